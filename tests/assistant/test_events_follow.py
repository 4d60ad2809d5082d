"""Following a run's events over Redis stays bounded by its caller's ``asyncio.timeout``
even when redis-py swallows the cancellation (8.1 does, now and then, when it lands
inside a command: CI once saw /ask wait out a 4 s model past a 10 ms ASK_SYNC_TIMEOUT)."""

import asyncio
import os
import secrets
import time
from contextlib import suppress

import pytest
import redis.asyncio as aioredis

from assistant import events

REDIS_URL = os.environ.get("REDIS_URL", "")
RUN_ENDS_AFTER = 3.0  # seconds: long after the caller's 50 ms limit
pytestmark = pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL")


def _swallowing(command):
    """A command that, as redis-py sometimes does, eats a cancellation and returns."""

    async def swallow(*args, **kwargs):
        with suppress(asyncio.CancelledError):
            await asyncio.sleep(0.2)
        return await command(*args, **kwargs)

    return swallow


async def _wait(run_id: int, limit: float) -> tuple[str, float]:
    started = time.monotonic()
    try:
        async with asyncio.timeout(limit):
            async for _ in events.run_events_follow(run_id=run_id):
                pass
    except TimeoutError:
        return "timed out", time.monotonic() - started
    return "followed to the end", time.monotonic() - started


def _follow_with(settings, monkeypatch, patch) -> tuple[str, float]:
    settings.REDIS_URL = REDIS_URL
    run_id = secrets.randbelow(10**12) + 10**12  # apart from other tests' runs

    async def scenario():
        client = events._async_redis()
        patch(monkeypatch, client)
        publisher = aioredis.Redis.from_url(REDIS_URL)
        tail, channel = events._keys(run_id)

        async def finish_later():  # the run ends long after the caller's limit
            await asyncio.sleep(RUN_ENDS_AFTER)
            await publisher.publish(channel, '{"seq": 1, "kind": "done", "data": {}}')

        later = asyncio.ensure_future(finish_later())
        try:
            return await _wait(run_id, 0.05)
        finally:
            later.cancel()
            await publisher.aclose()

    return asyncio.run(scenario())


def test_a_cancellation_swallowed_by_a_command_still_ends_the_wait(settings, monkeypatch):
    outcome, took = _follow_with(
        settings,
        monkeypatch,
        lambda mp, client: mp.setattr(client, "lrange", _swallowing(client.lrange)),
    )
    assert outcome == "timed out"
    assert took < RUN_ENDS_AFTER  # the wait ended before the run did


def test_a_cancellation_swallowed_while_subscribed_still_ends_the_wait(settings, monkeypatch):
    real_pubsub = aioredis.Redis.pubsub

    def pubsub(self, **kwargs):
        made = real_pubsub(self, **kwargs)
        made.get_message = _swallowing(made.get_message)  # type: ignore[method-assign]
        return made

    outcome, took = _follow_with(
        settings, monkeypatch, lambda mp, client: mp.setattr(aioredis.Redis, "pubsub", pubsub)
    )
    assert outcome == "timed out"
    assert took < RUN_ENDS_AFTER
