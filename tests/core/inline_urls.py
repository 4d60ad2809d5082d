"""Views for tests/core/test_inline_middleware.py: a session written and read, messages
added and shown, a form posted."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import path


def session_set(request: HttpRequest) -> HttpResponse:
    request.session["colour"] = request.GET["colour"]
    return HttpResponse("set")


def session_get(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.session.get("colour", "none"))


def message_add(request: HttpRequest) -> HttpResponse:
    messages.info(request, "Saved.")
    return redirect("/messages/show")


def message_show(request: HttpRequest) -> HttpResponse:
    return HttpResponse(" | ".join(str(message) for message in messages.get_messages(request)))


def form_post(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"posted {request.POST.get('name', '')}")


urlpatterns = [
    path("session/set", session_set),
    path("session/get", session_get),
    path("messages/add", message_add),
    path("messages/show", message_show),
    path("form", form_post),
]
