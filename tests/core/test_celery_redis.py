"""core/celery_redis.py: Celery's Redis transport keeping one client per channel, over a
real Redis (skipped without REDIS_URL)."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings
from kombu import Connection

from config.celery import app
from core.celery_redis import Channel

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")


def test_a_redis_broker_uses_it_and_a_publish_reaches_its_queue():
    assert settings.REDIS_URL.startswith("redis://")
    assert settings.CELERY_BROKER_TRANSPORT == "core.celery_redis:Transport"
    name = f"kay-test-{uuid.uuid4().hex}"
    with app.connection_for_write() as connection:
        assert isinstance(connection.default_channel, Channel)
        queue = connection.SimpleQueue(name)
        try:
            for n in range(3):
                queue.put({"n": n})
            got = []
            for _ in range(3):
                message = queue.get(timeout=5)
                got.append(message.payload)
                message.ack()  # the unacked entry, kept and removed by the kept client
            assert got == [{"n": 0}, {"n": 1}, {"n": 2}]
            with pytest.raises(queue.Empty):
                queue.get(block=False)
        finally:
            queue.clear()
            queue.close()


def test_one_client_is_kept_until_kombu_replaces_the_pool():
    with Connection(settings.CELERY_BROKER_URL, transport=settings.CELERY_BROKER_TRANSPORT) as c:
        channel = c.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second and first.connection_pool is channel.pool
        given = object()
        with channel.conn_or_acquire(given) as passed:
            assert passed is given  # a client passed in is used as it is
        channel._disconnect_pools()  # as after a fork or a lost connection
        with channel.conn_or_acquire() as third:
            assert third is not first and third.connection_pool is channel.pool
            assert third.ping()
