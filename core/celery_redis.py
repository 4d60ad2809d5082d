"""Celery's Redis transport, less a client built for every command.

kombu builds a ``redis.Redis`` (about 80 µs on this machine: its response callbacks are
set up afresh) for each command it sends outside its event loop: every task published,
and in a worker every message received (its entry among the unacked) and every ack. On
``/ask``'s path that is one in the web and one in the worker per run. Here a channel keeps
one, over the channel's own connection pool (a client is safe to share between threads;
pipelines are still made per use), and makes another when kombu replaces the pool (after
a fork or a disconnect). ``CELERY_BROKER_TRANSPORT`` names it when Redis is the broker.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _kept_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        kept = self._kept_client
        if kept is None or kept.connection_pool is not self.pool:
            kept = self._kept_client = self._create_client()
        yield kept


class Transport(kombu_redis.Transport):
    Channel = Channel
