"""A run's events sent without waiting for Redis's answers (assistant.events.RunEventWriter):
they arrive in order, ``done`` is out (after all before it) when its publish returns, and
a connection is never given back to the pool with answers unread — the next command on it
would read them as its own."""

import asyncio
import json
import os
import secrets

import pytest

from assistant import events
from assistant.events import DONE, RunEventWriter

REDIS_URL = os.environ.get("REDIS_URL", "")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL")


def _run_id() -> int:
    return secrets.randbelow(10**12) + 10**12  # apart from other tests' runs


def _stored(run_id: int) -> list[dict]:
    tail, _ = events._keys(run_id)
    return [json.loads(raw) for raw in events._redis().lrange(tail, 0, -1)]


@needs_redis
def test_events_arrive_in_order_and_done_is_out_when_its_publish_returns(settings):
    settings.REDIS_URL = REDIS_URL
    run_id = _run_id()
    writer = RunEventWriter(run_id)

    async def follow():
        return [event async for event in events.run_events_follow(run_id=run_id)]

    try:
        writer.publish("tool_start", {"name": "jira_search"})
        for piece in ("Here", " you", " are."):
            writer.publish("text", {"delta": piece})
        writer.publish(DONE, {"status": "completed"})
        # Nothing waits for the writer any more: a follower that starts now sees it all.
        followed = asyncio.run(follow())
    finally:
        writer.close()
    assert [(e["seq"], e["kind"]) for e in followed] == [
        (1, "tool_start"),
        (2, "text"),
        (3, "text"),
        (4, "text"),
        (5, DONE),
    ]
    assert "".join(e["data"]["delta"] for e in followed if e["kind"] == "text") == ("Here you are.")


@needs_redis
def test_answers_left_unread_are_read_before_the_connection_goes_back(settings):
    settings.REDIS_URL = REDIS_URL
    run_id = _run_id()
    writer = RunEventWriter(run_id)
    writer.publish("text", {"delta": "a"})
    writer.publish("text", {"delta": "b"})
    connection = writer._connection
    writer.close()  # the run ended without a done (its task was killed, say)
    assert [e["data"]["delta"] for e in _stored(run_id)] == ["a", "b"]
    # The same connection, back in the pool, answers the next command with its own answer.
    assert connection in events._redis().connection_pool._available_connections
    assert events._redis().echo("mine") == b"mine"
    assert events._redis().llen(events._keys(run_id)[0]) == 2


@needs_redis
def test_an_error_redis_gives_an_event_is_raised_and_its_connection_dropped(settings):
    settings.REDIS_URL = REDIS_URL
    run_id = _run_id()
    tail, _ = events._keys(run_id)
    events._redis().set(tail, "not a list")  # RPUSH on it is refused
    writer = RunEventWriter(run_id)
    try:
        writer.publish("text", {"delta": "x"})  # sent; Redis's refusal not read yet
        connection = writer._connection
        with pytest.raises(Exception, match="WRONGTYPE"):
            writer.publish(DONE, {"status": "completed"})
        assert writer._connection is None and writer._unread == 0
        assert connection._sock is None  # dropped, not handed on with an answer unread
        writer.close()
        assert events._redis().echo("next") == b"next"
    finally:
        events._redis().delete(tail)


def test_without_redis_each_event_is_a_row(settings, alice, db):
    from assistant.models import AssistantRun, AssistantRunEvent

    settings.REDIS_URL = ""
    run = AssistantRun.objects.create(owner=alice, prompt="x")
    writer = RunEventWriter(run.pk)
    writer.publish("text", {"delta": "hi"})
    writer.publish(DONE, {"status": "completed"})
    writer.close()
    assert list(
        AssistantRunEvent.objects.filter(run=run).order_by("seq").values_list("seq", "kind")
    ) == [(1, "text"), (2, DONE)]
