"""Tasks whose result nobody reads: queueing one from a new thread (each ASGI request's
sync code runs in one) builds no result backend (core.celery_tasks)."""

import threading

from celery.backends.base import DisabledBackend

from assistant.tasks import assistant_run_execute
from config.celery import app


def test_a_result_nobody_reads_builds_no_backend_in_a_new_thread(monkeypatch):
    built: list[object] = []
    real = type(app)._get_backend

    def counting(self):  # type: ignore[no-untyped-def]
        built.append(self)
        return real(self)

    monkeypatch.setattr(type(app), "_get_backend", counting)
    results = []
    thread = threading.Thread(target=lambda: results.append(assistant_run_execute.AsyncResult("x")))
    thread.start()
    thread.join()
    assert isinstance(results[0].backend, DisabledBackend)
    assert built == []
    assert assistant_run_execute.ignore_result
