"""A base for Celery tasks whose result nobody reads."""

from __future__ import annotations

from functools import cache
from typing import Any

from celery import Celery, Task
from celery.backends.base import DisabledBackend
from celery.result import AsyncResult


@cache
def _disabled_backend(app: Celery) -> DisabledBackend:
    return DisabledBackend(app)  # stateless: one per app, shared by every thread


class UnreadResultTask(Task):
    """For ``ignore_result=True`` tasks: queueing one returns a result bound to a disabled
    backend. Celery keeps its result backend per thread, and under ASGI every request's
    sync code runs in a new thread, so each queueing built a Redis backend for a result
    nobody reads: about 2 ms, most of it redis-py reading its own version from the
    package's metadata."""

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AsyncResult:  # Celery names it so
        app = self._get_app()
        kwargs.setdefault("backend", _disabled_backend(app))
        return app.AsyncResult(task_id, task_name=self.name, **kwargs)
