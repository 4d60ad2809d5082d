"""Kay's ASGI application gives each request a thread kept from an earlier request
(core.asgi_handler) instead of the two Django starts per request: the same thread for
requests one after another, never one thread for two requests at once, a thread still
busy with a request's leftover work not given to the next, and an orphan's sync work
(a client gone while its run was stored) still done once its request has ended."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from asgiref.sync import ThreadSensitiveContext, async_to_sync, sync_to_async
from django.core.signals import request_finished

from assistant import async_views
from config.asgi import application
from core.asgi_handler import RequestThreads
from tests.core import thread_urls

pytestmark = pytest.mark.urls("tests.core.thread_urls")


def asgi_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://127.0.0.1"
    )


def test_requests_one_after_another_run_on_one_kept_thread():
    finished_on: list[str] = []

    def on_finished(**kwargs: Any) -> None:
        finished_on.append(f"{threading.current_thread().name} {threading.get_ident()}")

    async def scenario() -> list[str]:
        async with asgi_client() as client:
            names = []
            for _ in range(3):
                response = await client.get("/thread")
                assert response.status_code == 200
                names.append(response.text)
                await asyncio.sleep(0.05)  # given back once its thread is idle
            return names

    request_finished.connect(on_finished)
    try:
        names = async_to_sync(scenario)()
    finally:
        request_finished.disconnect(on_finished)
    assert names[0].startswith("kay-request")
    assert len(set(names)) == 1, names  # Django's own handler: three new threads
    # A request's sync code stays on its thread, its end (connections closed) included.
    assert set(finished_on) == set(names)


def test_requests_at_the_same_time_never_share_a_thread():
    thread_urls.meeting.reset()

    async def scenario() -> list[httpx.Response]:
        async with asgi_client() as client:
            return list(await asyncio.gather(client.get("/meet"), client.get("/meet")))

    first, second = async_to_sync(scenario)()
    assert first.status_code == second.status_code == 200  # one thread: the barrier breaks
    assert first.text != second.text


def test_a_thread_still_busy_is_kept_only_once_its_work_is_done():
    threads = RequestThreads()
    executor = threads.take()
    release = threading.Event()
    leftover = executor.submit(release.wait, 5)  # a request's work its client left behind
    threads.give_back(executor)
    assert threads.idle == 0
    assert threads.take() is not executor  # the next request gets another thread
    release.set()
    leftover.result(timeout=5)
    for _ in range(100):
        if threads.idle:
            break
        threading.Event().wait(0.01)
    assert threads.take() is executor


def test_threads_past_the_ones_kept_end():
    threads = RequestThreads(kept=1)
    first, second = threads.take(), threads.take()
    threads.give_back(first)
    first.submit(lambda: None).result(timeout=5)
    threads.give_back(second)
    for _ in range(100):
        if second._shutdown:  # type: ignore[attr-defined]
            break
        threading.Event().wait(0.01)
    assert threads.idle == 1 and second._shutdown  # type: ignore[attr-defined]


def test_an_orphans_sync_work_runs_after_its_request_has_ended():
    """A client gone while ``/ask`` stored its run: the request ends (its thread given
    back), and what its orphan then hands to a thread (here a stream slot given back)
    must still run, not fail on the request's closed context."""
    released: list[str] = []
    started = threading.Event()
    finish = threading.Event()

    def store() -> str:
        started.set()
        finish.wait(5)
        return "stored"

    @sync_to_async
    def abandoned(result: str) -> None:
        released.append(result)

    async def scenario() -> None:
        executor = RequestThreads().take()
        async with ThreadSensitiveContext(executor=executor):
            view = asyncio.ensure_future(
                async_views._uncancelled(sync_to_async(store)(), abandoned=abandoned)
            )
            await sync_to_async(started.wait, thread_sensitive=False)(5)
            view.cancel()  # the client went away
            with pytest.raises(asyncio.CancelledError):
                await view
        finish.set()  # the stored run's thread finishes after the request ended
        for _ in range(200):
            if released or not async_views._ORPHANS:
                break
            await asyncio.sleep(0.01)

    async_to_sync(scenario)()
    assert released == ["stored"]
