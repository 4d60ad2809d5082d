"""Attack review 25: the stream slots (assistant.events), after the change that gives a
slot back before ``SlotStreamingResponse.close`` fires ``request_finished``.

Probed and found handled: a slot given back by both the stream's end and the response's
close counts once; a client gone mid-stream gives it back once; a response closed twice, or
never read, once; one user's release never touches another's count; a release that raises
still closes the response (its closers run, ``request_finished`` fires).

Found (marked "Found by the review", fixed since: the page's stream view is async and
runs its sync part through ``assistant.async_views.slot_taking_view``; ``_events`` no
longer gives the slot back itself): the page's stream view (``assistant_stream``, a sync
view) takes its slot in its thread; a client gone while it runs gets the view cancelled by
Django, the response is never sent nor closed, and the slot is never given back. Under ASGI
a page stream that ends gives its slot back from ``_events``' ``finally``, on a worker
thread of the default executor: without Redis that opens a database connection on a thread
no ``request_finished`` ever closes, the very thing the change set out to avoid."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.core.signals import request_finished
from django.db import connection
from django.test import AsyncRequestFactory

from assistant import events as events_module
from assistant import views
from assistant.events import (
    STREAMS_PER_USER,
    SlotStreamingResponse,
    StreamSlot,
    _slot_key,
    stream_slot_take,
    stream_with_slot,
)
from core.errors import RateLimited
from tests.assistant.closing import connections_kept_on_close

STREAM = "/dashboard/assistant/stream"


def _count(user) -> int:
    return cache.get(_slot_key(user.pk)) or 0


def _close(response) -> None:
    """Closed as a server closes it, as the test client does."""
    with connections_kept_on_close():
        response.close()


async def _chunks(*parts: bytes, hang: asyncio.Event | None = None):
    for part in parts:
        yield part
    if hang is not None:
        await hang.wait()  # a stream waiting for the run's next event


def _read(response) -> list[bytes]:
    async def read() -> list[bytes]:
        return [part async for part in response]

    return async_to_sync(read)()


# --- Probes: each slot given back exactly once ---------------------------------------


@pytest.mark.django_db
def test_a_stream_read_to_its_end_then_closed_gives_its_slot_back_once(alice):
    kept = stream_slot_take(user_id=alice.pk)  # another tab's stream, still open
    slot = stream_slot_take(user_id=alice.pk)
    response = SlotStreamingResponse(stream_with_slot(_chunks(b"a", b"b"), slot), slot=slot)
    assert _read(response) == [b"a", b"b"]
    assert _count(alice) == 1  # the stream's end gave it back
    _close(response)
    assert _count(alice) == 1  # the close found it given back
    kept.release()
    assert _count(alice) == 0


@pytest.mark.django_db
def test_a_client_gone_mid_stream_gives_its_slot_back_once(alice):
    """Django cancels the task sending the stream (the client went away), then closes the
    response: the stream's ``finally`` and the close both run."""
    kept = stream_slot_take(user_id=alice.pk)
    slot = stream_slot_take(user_id=alice.pk)
    response = SlotStreamingResponse(
        stream_with_slot(_chunks(b"a", hang=asyncio.Event()), slot), slot=slot
    )

    async def scenario() -> None:
        read: list[bytes] = []

        async def send_all() -> None:
            async for part in response:
                read.append(part)

        task = asyncio.ensure_future(send_all())
        while not read:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async_to_sync(scenario)()
    assert _count(alice) == 1
    _close(response)
    _close(response)  # closed again: nothing more given back
    assert _count(alice) == 1
    kept.release()


@pytest.mark.django_db
def test_a_response_never_read_and_closed_twice_gives_its_slot_back_once(alice):
    kept = stream_slot_take(user_id=alice.pk)
    slot = stream_slot_take(user_id=alice.pk)
    response = SlotStreamingResponse(stream_with_slot(_chunks(b"a"), slot), slot=slot)
    _close(response)
    _close(response)
    slot.release()
    assert _count(alice) == 1
    kept.release()
    assert _count(alice) == 0


@pytest.mark.django_db
def test_streams_given_back_many_times_never_open_a_ninth(alice):
    """Each slot given back from every path (stream's end, close, close again): the count
    never drops below the open streams, so the ninth is still refused."""
    slots = [stream_slot_take(user_id=alice.pk) for _ in range(STREAMS_PER_USER)]
    ended = slots.pop()
    response = SlotStreamingResponse(stream_with_slot(_chunks(b"x"), ended), slot=ended)
    _read(response)
    _close(response)
    _close(response)
    ended.release()
    again = stream_slot_take(user_id=alice.pk)  # the one given back, taken again
    with pytest.raises(RateLimited):
        stream_slot_take(user_id=alice.pk)
    for slot in [*slots, again]:
        slot.release()
    assert _count(alice) == 0


@pytest.mark.django_db
def test_one_users_slot_given_back_never_touches_anothers_count(alice, bob):
    alices = [stream_slot_take(user_id=alice.pk) for _ in range(2)]
    bobs = stream_slot_take(user_id=bob.pk)
    response = SlotStreamingResponse(stream_with_slot(_chunks(b"a"), alices[0]), slot=alices[0])
    _read(response)
    _close(response)
    alices[0].release()
    assert (_count(alice), _count(bob)) == (1, 1)
    alices[1].release()
    bobs.release()


def test_a_release_that_raises_still_closes_the_response(caplog):
    """The cache down (Redis gone, the database's connection broken): the response is
    still closed (its stream's closer runs, request_finished fires), and the error is
    logged rather than raised after the response went out."""
    seen: list[str] = []

    class BrokenSlot(StreamSlot):
        def release(self) -> None:
            seen.append("release")
            raise ConnectionError("cache down")

    def stream():
        try:
            yield b"a"
        finally:
            seen.append("stream closed")

    def finished(**kwargs) -> None:
        seen.append("request_finished")

    request_finished.connect(finished)
    try:
        response = SlotStreamingResponse(stream(), slot=BrokenSlot("k"))
        next(iter(response))  # started, so its generator's finally runs on close
        _close(response)  # no database in this test
    finally:
        request_finished.disconnect(finished)
    assert seen == ["release", "stream closed", "request_finished"]
    assert "slot could not be given back" in caplog.text
    assert response.closed


# --- Found by the review ----------------------------------------------------------------


@pytest.fixture
def _no_redis_events(settings):
    settings.REDIS_URL = ""  # nothing here reads events


def _page_request(user):
    request = AsyncRequestFactory().post(
        STREAM, json.dumps({"prompt": "hi", "mode": "one_shot"}), content_type="application/json"
    )
    request.user = user

    async def auser():
        return user

    request.auser = auser  # as AuthenticationMiddleware sets it
    return request


@pytest.mark.django_db
def test_a_page_stream_whose_client_leaves_during_the_view_gives_its_slot_back(
    alice, monkeypatch, _no_redis_events
):
    """Found by the review. Django runs the page's sync stream view in a thread and, when
    the client disconnects meanwhile, cancels the request: the view still takes its slot
    in that thread, but its response is never sent nor closed and its generators never
    start, so nothing gives the slot back. Eight such (a reload while asking, a flaky
    phone) and the page's every stream is a 429 for ``streams_ttl()`` (21 minutes; each
    later stream taken renews it). /ask/runs/<id>/events is guarded (``_uncancelled``);
    this view is not."""
    entered, gate = threading.Event(), threading.Event()
    real = views.stream_slot_take

    def slow_take(**kwargs):
        entered.set()
        gate.wait(10)
        return real(**kwargs)

    monkeypatch.setattr(views, "stream_slot_take", slow_take)
    started: list[bool] = []
    monkeypatch.setattr(views, "_run", lambda *args: started.append(True))

    async def scenario() -> None:
        # What Django's ASGI handler does with a sync view, and on a disconnect.
        task = asyncio.ensure_future(views.assistant_stream(_page_request(alice)))
        await asyncio.to_thread(entered.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()
        for _ in range(50):  # the view's thread runs to its end
            await sync_to_async(lambda: None)()
            await asyncio.sleep(0.02)

    async_to_sync(scenario)()
    assert not started  # no run was started for it
    assert _count(alice) == 0


@pytest.mark.django_db(transaction=True)
def test_a_page_stream_under_asgi_gives_its_slot_back_on_the_requests_thread(
    alice, monkeypatch, _no_redis_events
):
    """Found by the review. Under ASGI the page's stream ends in ``_events``' ``finally``,
    which runs on the default executor's worker (``_async_events`` steps it with
    ``thread_sensitive=False``): without Redis the count is in the database, so giving the
    slot back opens a connection on that worker, which no ``request_finished`` closes (the
    change in 22ee27d moved the close's release before request_finished for exactly this;
    here the close finds the slot already given back). Each worker keeps a connection for
    ever: up to the executor's 32 threads' worth per process, never health-checked."""
    if "DatabaseCache" not in settings.CACHES["default"]["BACKEND"]:
        pytest.skip("the count is in the database only without Redis")
    monkeypatch.setattr(views, "_run", lambda user, fields, emit: emit("done", {"ok": True}))
    released_on: list[tuple[str, bool]] = []
    real_release = StreamSlot.release

    def release(self) -> None:
        already = self.released
        real_release(self)
        if not already:
            released_on.append((threading.current_thread().name, connection.connection is not None))

    monkeypatch.setattr(events_module.StreamSlot, "release", release)
    request_thread = threading.current_thread().name  # where thread-sensitive code runs

    response = async_to_sync(views.assistant_stream)(_page_request(alice))
    assert response.status_code == 200
    _read(response)
    _close(response)
    assert _count(alice) == 0
    [(thread, connection_open)] = released_on
    # Given back where the response's close (and request_finished) runs.
    assert thread == request_thread, (thread, connection_open)
