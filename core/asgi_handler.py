"""Kay's ASGI application: Django's handler, its middleware inline
(:mod:`core.inline_middleware`), and each request's sync code on a reused thread.

Django runs a request's sync code (the view, signal receivers, ``response.close``) on one
thread of that request's own: asgiref starts a new single-thread executor for every
request, and one more thread to join it when the request ends. Two thread starts per
request cost this machine about 1 ms (``GET /api/keys`` in-process, 7.9 → 7.0 ms). This
handler keeps finished requests' executors and gives each new request an idle one: still
one thread per request, never one thread for two requests at once. A thread kept this way
keeps its database connections between requests, as a WSGI server's threads do (Django
closes them at each request's end unless ``CONN_MAX_AGE`` says otherwise)."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext

from core.inline_middleware import InlineMiddlewareASGIHandler

# Idle request threads kept per process: more only after a burst, whose extra threads end.
IDLE_THREADS_KEPT = 32


def _nothing() -> None:
    return None


class RequestThreads:
    """Single-thread executors for requests: an idle one when there is one, else a new one;
    given back once idle."""

    def __init__(self, kept: int = IDLE_THREADS_KEPT) -> None:
        self.kept = kept
        self._idle: list[ThreadPoolExecutor] = []
        self._lock = threading.Lock()  # given back from the executors' own threads

    def take(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._idle:
                return self._idle.pop()  # the most recent: its thread's caches are warm
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="kay-request")

    def give_back(self, executor: ThreadPoolExecutor) -> None:
        """Kept once its work is done: sync code a request left running (a client gone
        while a run was being stored, finished by an orphan task) must not hold up the
        next request given this thread."""

        def idle(_: Future[None]) -> None:
            with self._lock:
                if len(self._idle) < self.kept:
                    self._idle.append(executor)
                    return
            executor.shutdown(wait=False)

        executor.submit(_nothing).add_done_callback(idle)

    def forget_idle(self) -> None:
        """End the idle threads (tests: each starts without another test's connections)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for executor in idle:
            executor.shutdown(wait=False)

    @property
    def idle(self) -> int:
        with self._lock:
            return len(self._idle)


class KayASGIHandler(InlineMiddlewareASGIHandler):
    """Django's ASGI handler with its middleware inline and request threads reused."""

    def __init__(self) -> None:
        super().__init__()
        self.threads = RequestThreads()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)  # Django refuses it, as before
            return
        executor = self.threads.take()
        try:
            # The request's thread-sensitive sync code runs on this executor, as on the one
            # Django would have started for it.
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            self.threads.give_back(executor)
