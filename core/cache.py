"""Django's Redis cache with its connection pools shared by the whole process.

Django keeps one cache object per thread, and under ASGI one per request (its handler is
context-local): each brought a new connection pool, so every request to the async web
opened (and left to the garbage collector) a TCP connection to Redis for its throttles.
Here a pool is made once per server and options, and every cache object uses it."""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_POOLS: dict[tuple[str, str], Any] = {}
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


class SharedPoolRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedPoolRedisCacheClient
