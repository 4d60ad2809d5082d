"""Views for tests/core/test_asgi_threads.py: which thread a request's sync code ran on, and
one that waits for a second request to arrive."""

import threading

from django.http import HttpRequest, HttpResponse
from django.urls import path

# Two requests meet here: only possible when each has a thread of its own.
meeting = threading.Barrier(2)


def _this_thread() -> str:
    return f"{threading.current_thread().name} {threading.get_ident()}"


def thread_name(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_this_thread())


def meet(request: HttpRequest) -> HttpResponse:
    meeting.wait(timeout=5)  # BrokenBarrierError (a 500) when the other never came
    return HttpResponse(_this_thread())


urlpatterns = [
    path("thread", thread_name),
    path("meet", meet),
]
