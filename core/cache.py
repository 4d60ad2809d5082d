"""Django's Redis cache with its connection pools shared by the whole process.

Django keeps one cache object per thread, and under ASGI one per request (its handler is
context-local): each brought a new connection pool, so every request to the async web
opened (and left to the garbage collector) a TCP connection to Redis for its throttles.
Here a pool is made once per server and options, and every cache object uses it, through
one client per pool: Django built a client for every command (~0.1 ms each, most of it
redis-py filling in its reply callbacks), and a client is safe to share between threads
(it takes a connection from the pool per command)."""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_POOLS: dict[tuple[str, str], Any] = {}
_CLIENTS: dict[int, Any] = {}  # id of a pool in _POOLS (kept for the process) → its client
_LOCK = threading.Lock()


class SharedPoolRedisCacheClient(RedisCacheClient):
    def _get_connection_pool(self, write: bool) -> Any:
        django: Any = self  # the private attributes of Django's client, not in its stubs
        server = django._servers[django._get_connection_pool_index(write)]
        options = django._pool_options
        key = (server, repr(sorted(options.items(), key=lambda item: item[0])))
        pool = _POOLS.get(key)
        if pool is None:
            with _LOCK:
                pool = _POOLS.setdefault(key, django._pool_class.from_url(server, **options))
        return pool

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        client = _CLIENTS.get(id(pool))
        if client is None:
            with _LOCK:
                client = _CLIENTS.setdefault(id(pool), self._client(connection_pool=pool))  # type: ignore[attr-defined]
        return client


class SharedPoolRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedPoolRedisCacheClient
