"""A run's progress, published by the worker that executes it and followed by the web.

Events are ``{"seq", "kind", "data"}`` with ``seq`` counting from 1 per run; ``kind`` is
``text`` (a delta), ``tool_start``/``tool_end``, ``pending`` (an action waits for the
user), or ``done`` (the run's status is final; a completed run's carries ``/ask``'s body, else
read the run for its result).

With ``REDIS_URL`` every event goes to a list (the tail a late follower reads first) and
to a pub/sub channel (what a follower then waits on, without polling); both expire an hour
after the run's last event. Without Redis (the embedded SQLite default) they are rows of
``AssistantRunEvent`` that followers poll. Followers are async: a waiting request holds
no thread, only a coroutine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db.models import Max, Subquery
from django.db.models.functions import Coalesce
from django.http import StreamingHttpResponse
from django.utils import timezone

from assistant.models import AssistantRunEvent
from assistant.services.confirm import CONFIRMATION_TTL
from core.errors import RateLimited

logger = logging.getLogger(__name__)
TTL = 3600
POLL_SECONDS = 0.2
DONE = "done"
_client: redis.Redis | None = None
# Followers' clients, one per event loop (a client's connections belong to the loop that
# opened them): each wait reads the tail over a kept connection instead of opening one.
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def _keys(run_id: int) -> tuple[str, str]:
    return f"kay:assistant:run:{run_id}:events", f"kay:assistant:run:{run_id}:channel"


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(settings.REDIS_URL)
    return _client


# One round trip per event (a run publishes one per streamed piece of text): RPUSH's new
# length numbers the event (one publisher per run, so no gaps), and the numbered event
# (``{"seq": n, `` before the rest of the object) goes to the channel.
_PUBLISH = """
local seq = redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', KEYS[2], '{"seq": ' .. seq .. ', ' .. string.sub(ARGV[1], 2))
return seq
"""
_script: Any = None


def _publish_script() -> Any:
    global _script
    if _script is None:
        _script = _redis().register_script(_PUBLISH)
    return _script


def run_event_publish(*, run_id: int, kind: str, data: dict[str, Any] | None = None) -> None:
    """Append one event to the run's stream (called by the one process executing it)."""
    if settings.REDIS_URL:
        event = json.dumps({"kind": kind, "data": data or {}})
        _publish_script()(keys=_keys(run_id), args=[event, TTL])
        return
    # Numbered by the INSERT itself (one statement, not a read then a write).
    last = (
        AssistantRunEvent.objects.filter(run_id=run_id)
        .order_by()
        .values("run_id")
        .annotate(seq=Max("seq"))
        .values("seq")
    )
    AssistantRunEvent.objects.create(
        run_id=run_id, seq=Coalesce(Subquery(last), 0) + 1, kind=kind, data=data or {}
    )


class RunEventWriter:
    """One run's events, from the one thread executing it. With Redis, each is sent
    without waiting for Redis's answer (one socket write, not a round trip while the run
    waits); the answers are read before ``done``, which is published only after every
    earlier event was stored, and by :meth:`close`. The connection is the writer's alone
    until then: one going back to the pool with answers unread would hand them to the
    next command, so it is dropped instead. Without Redis, each is a row, as
    :func:`run_event_publish` writes it."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self._connection: Any = None
        self._unread = 0

    def publish(self, kind: str, data: dict[str, Any] | None = None) -> None:
        if not settings.REDIS_URL:
            run_event_publish(run_id=self.run_id, kind=kind, data=data)
            return
        event = json.dumps({"kind": kind, "data": data or {}})
        try:
            self._read_arrived()
            if self._connection is not None and not self._unread and not self._open():
                self._drop()  # closed by Redis meanwhile (a restart, its idle timeout)
            if self._connection is None:
                self._connection = _redis().connection_pool.get_connection()
            # No health-check PING while answers are owed: it would read one of them.
            self._connection.send_command(
                "EVAL",
                _PUBLISH,
                2,
                *_keys(self.run_id),
                event,
                TTL,
                check_health=not self._unread,
            )
            self._unread += 1
            if kind == DONE:
                self.flush()  # done is out once this returns, after all before it
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._drop()
            if kind != DONE:
                raise
            # The waiting request must still hear how the run ended: over a connection of
            # its own (events owed on the lost one may be gone; done is not).
            logger.warning("run %s: done sent again after %s", self.run_id, type(exc).__name__)
            run_event_publish(run_id=self.run_id, kind=kind, data=data)
        except BaseException:
            self._drop()
            raise

    def _open(self) -> bool:
        """Nothing owed and nothing to read: still open (as the pool checks a connection)."""
        try:
            return not self._connection.can_read()
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def _read_arrived(self) -> None:
        """The answers already in (no wait): most of the time none is owed."""
        while self._unread and self._connection.can_read(timeout=0):
            self._unread -= 1
            self._connection.read_response()

    def flush(self) -> None:
        """Read the answers of the events sent: an error Redis gave one is raised here."""
        try:
            while self._unread:
                self._unread -= 1
                self._connection.read_response()
        except BaseException:
            self._drop()
            raise

    def close(self) -> None:
        """Every answer read and the connection given back (dropped if one is unread)."""
        if self._connection is None:
            return
        try:
            self.flush()
        finally:
            if self._connection is not None:
                _redis().connection_pool.release(self._connection)
                self._connection = None

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.disconnect()
            _redis().connection_pool.release(self._connection)
            self._connection, self._unread = None, 0


def run_events_clear(*, run_id: int) -> None:
    """Forget any events published under ``run_id`` (see ``run_ask_start``). Rows of the
    database fallback go with their run, so only Redis holds any to forget."""
    if settings.REDIS_URL:
        _redis().delete(_keys(run_id)[0])


def run_events_last_seq(*, run_id: int) -> int:
    """The run's latest event number: a run resumed after /ask/confirm is followed from
    there, past the ``done`` of its first part."""
    if settings.REDIS_URL:
        return int(_redis().llen(_keys(run_id)[0]))  # type: ignore[arg-type]
    return int(
        AssistantRunEvent.objects.filter(run_id=run_id).aggregate(seq=Max("seq"))["seq"] or 0
    )


def _async_redis() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = _async_clients[loop] = aioredis.Redis.from_url(settings.REDIS_URL)
    return client


# redis-py (8.1) can swallow a cancellation that lands inside one of its commands: the
# command returns as if nothing happened, so the caller's ``asyncio.timeout`` never
# fires and the wait lasts until the run ends. The task's ``cancelling()`` count still
# shows the request; each step checks it, and the subscription is read in slices, so a
# swallowed cancellation is honoured within one slice.
_READ_SLICE_SECONDS = 0.5


def _raise_if_cancelled(before: int) -> None:
    task = asyncio.current_task()
    if task is not None and task.cancelling() > before:
        raise asyncio.CancelledError


async def _redis_follow(run_id: int, after: int) -> AsyncIterator[dict[str, Any]]:
    tail, channel = _keys(run_id)
    client = _async_redis()
    pubsub = client.pubsub()
    task = asyncio.current_task()
    before = task.cancelling() if task is not None else 0
    try:
        # Subscribe first, then read the tail: nothing published in between is missed,
        # and what arrives twice is dropped by its seq.
        await pubsub.subscribe(channel)
        _raise_if_cancelled(before)
        backlog = await client.lrange(tail, after, -1)
        _raise_if_cancelled(before)
        seen = after
        for seq, raw in enumerate(backlog, start=after + 1):
            seen = seq
            event = {"seq": seq, **json.loads(raw)}
            yield event
            if event["kind"] == DONE:
                return
        while True:
            message = await pubsub.get_message(
                ignore_subscribe_messages=True, timeout=_READ_SLICE_SECONDS
            )
            _raise_if_cancelled(before)
            if message is None:
                continue
            event = json.loads(message["data"])
            if event["seq"] <= seen:
                continue
            seen = event["seq"]
            yield event
            if event["kind"] == DONE:
                return
    finally:
        await pubsub.aclose()  # its connection goes back to the loop's pool


def _rows_after(run_id: int, after: int) -> list[dict[str, Any]]:
    return [
        {"seq": row.seq, "kind": row.kind, "data": row.data}
        for row in AssistantRunEvent.objects.filter(run_id=run_id, seq__gt=after)
    ]


async def _database_follow(run_id: int, after: int) -> AsyncIterator[dict[str, Any]]:
    while True:
        for event in await sync_to_async(_rows_after)(run_id, after):
            after = event["seq"]
            yield event
            if event["kind"] == DONE:
                return
        await asyncio.sleep(POLL_SECONDS)


def run_events_follow(*, run_id: int, after: int = 0) -> AsyncIterator[dict[str, Any]]:
    """The run's events after ``after`` as they come, ending with ``done``. The caller
    bounds the wait (``asyncio.timeout``)."""
    if settings.REDIS_URL:
        return _redis_follow(run_id, after)
    return _database_follow(run_id, after)


def run_events_purge(*, older_than_seconds: int = TTL) -> int:
    """Delete database events older than the Redis tail lives; how many went."""
    deleted, _ = AssistantRunEvent.objects.filter(
        created_at__lt=timezone.now() - timedelta(seconds=older_than_seconds)
    ).delete()
    return deleted


# --- A cap on each user's open streams ---------------------------------------------------

STREAMS_PER_USER = 8


def _slot_key(user_id: int) -> str:
    return f"assistant:streams:{user_id}"


def streams_ttl() -> int:
    """How long the count of a user's streams lives after the last one opened: longer than
    any stream (a run, a wait for approval, the run resumed), so it lapses only when none
    is open, and a count a killed process never gave back does not lock the user out."""
    approval = int(CONFIRMATION_TTL.total_seconds())
    return 2 * int(settings.CELERY_TASK_TIME_LIMIT) + approval + 60


@dataclass
class StreamSlot:
    """One of a user's open streams, given back once (by the stream's end or the
    response's close, whichever comes first)."""

    key: str
    released: bool = False

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        with suppress(ValueError):  # the count lapsed meanwhile: nothing to give back
            cache.decr(self.key)


def stream_slot_take(*, user_id: int) -> StreamSlot:
    """Count one more open event stream for the user; ``RateLimited`` (429) past
    ``STREAMS_PER_USER``: each open stream holds a connection, a coroutine and (with
    Redis) a subscription."""
    key, ttl = _slot_key(user_id), streams_ttl()
    cache.add(key, 0, timeout=ttl)
    try:
        count = cache.incr(key)
    except ValueError:  # lapsed between add and incr
        cache.set(key, 1, timeout=ttl)
        count = 1
    slot = StreamSlot(key)
    if count > STREAMS_PER_USER:
        # Not renewed by a refusal: slots a killed process never gave back lapse with the
        # count, however often the user, locked out by them, tries again.
        slot.release()
        raise RateLimited(
            f"Too many open assistant streams: at most {STREAMS_PER_USER} at once. "
            "Close one (another tab or a client still reading) and try again.",
            retry_after=10,
        )
    cache.touch(key, timeout=ttl)
    return slot


async def stream_with_slot(stream: AsyncIterator[bytes], slot: StreamSlot) -> AsyncIterator[bytes]:
    """``stream``, its slot given back when it ends, fails or is cancelled (the client
    went away)."""
    try:
        async for chunk in stream:
            yield chunk
    finally:
        await sync_to_async(slot.release)()  # the cache may be the database


class SlotStreamingResponse(StreamingHttpResponse):
    """A stream whose slot is given back when the server closes it, also when it was
    never read to its end."""

    def __init__(self, stream: Any, *, slot: StreamSlot, **kwargs: Any) -> None:
        super().__init__(stream, **kwargs)
        self.slot = slot

    def close(self) -> None:
        # Released first: closing fires ``request_finished``, which gives the thread's
        # database connections back, and the count may live in the database (no Redis).
        # The cache down then is logged, not raised: the response has gone out, and the
        # count lapses on its own (``streams_ttl``).
        try:
            self.slot.release()
        except Exception:
            logger.exception("a stream's slot could not be given back")
        super().close()
