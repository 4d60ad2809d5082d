"""Views for tests/assistant/test_attack_review22.py: which thread a request's sync code ran
on, a view that blocks until released (a client gone meanwhile), and views that leave or
read the thread's database connection state."""

import threading

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

started = threading.Event()
release = threading.Event()
finished_on: list[str] = []


def this_thread() -> str:
    return f"{threading.current_thread().name} {threading.get_ident()}"


def thread_name(request: HttpRequest) -> HttpResponse:
    return HttpResponse(this_thread())


def block(request: HttpRequest) -> HttpResponse:
    started.set()
    release.wait(5)
    finished_on.append(this_thread())
    return HttpResponse(this_thread())


def leave_transaction_open(request: HttpRequest) -> HttpResponse:
    """A buggy view: autocommit turned off, a transaction begun and never ended."""
    connection.set_autocommit(False)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse(this_thread())


def connection_state(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse(
        {
            "thread": this_thread(),
            "autocommit": connection.get_autocommit(),
            "in_atomic_block": connection.in_atomic_block,
        }
    )


urlpatterns = [
    path("thread", thread_name),
    path("block", block),
    path("leave-open", leave_transaction_open),
    path("state", connection_state),
]
