"""Per-client rate limits for the API, keyed by the client address of ``core.clientip``.

DRF's own ``get_ident`` trusts a forged ``X-Forwarded-For`` unless told how many proxies
there are, and counts each IPv6 address apart; these classes ask the functions the rest of
Kay uses (an IPv6 client counts by its /64).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import defaultdict
from typing import Any

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.redis import RedisCache
from django.utils.connection import ConnectionProxy
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

from core.clientip import client_ip, rate_limit_ident

# DRF's sliding window, one round trip for any number of limits, and atomic: DRF reads a
# limit's history and writes it back, so requests arriving together could each see room
# for one more. KEYS: the histories (sorted sets of request times). ARGV: now, a name for
# this request, then each limit's duration (s) and allowed requests. Per key: -1 allowed
# (and counted), -2 refused with no wait known, else refused, the wait in milliseconds.
_SLIDING_WINDOW = """
local now = tonumber(ARGV[1])
local result = {}
for i, key in ipairs(KEYS) do
  local duration = tonumber(ARGV[1 + 2 * i])
  local allowed = tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - duration)
  local count = redis.call('ZCARD', key)
  if count >= allowed then
    local remaining = duration
    if count > 0 then
      remaining = duration - (now - tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]))
    end
    local available = allowed - count + 1
    if available <= 0 then
      result[i] = -2
    else
      result[i] = math.ceil(remaining / available * 1000)
    end
  else
    redis.call('ZADD', key, now, ARGV[2])
    redis.call('EXPIRE', key, math.ceil(duration) + 1)
    result[i] = -1
  end
end
return result
"""
ALLOWED = -1
_script: Any = None
_script_lock = threading.Lock()


def _backend(cache: Any) -> Any:
    """The cache object itself (DRF's throttles hold Django's proxy of the default one)."""
    return caches[DEFAULT_CACHE_ALIAS] if isinstance(cache, ConnectionProxy) else cache


def _in_redis(cache: Any) -> bool:
    return isinstance(_backend(cache), RedisCache)


def sliding_window_hits(cache: Any, limits: list[tuple[str, int, int]]) -> list[float | None]:
    """Count one request against each ``(key, duration, allowed)`` in one Redis call; per
    limit ``ALLOWED`` (counted), else the seconds to wait (None: unknown), as DRF says."""
    global _script
    cache = _backend(cache)
    client = cache._cache.get_client(write=True)
    if _script is None:
        with _script_lock:
            _script = _script or client.register_script(_SLIDING_WINDOW)
    now = time.time()
    keys = [cache.make_key(f"rate:{key}") for key, _, _ in limits]
    args: list[Any] = [now, f"{now}:{secrets.token_hex(6)}"]
    for _, duration, allowed in limits:
        args += [duration, allowed]
    results = _script(keys=keys, args=args, client=client)
    return [
        ALLOWED if r == ALLOWED else None if r == -2 else max(int(r), 0) / 1000 for r in results
    ]


class _CountedInRedis:
    """DRF's counting for a ``SimpleRateThrottle``, done by ``sliding_window_hits`` when the
    cache is Redis (one round trip, atomic); as DRF does it otherwise."""

    _redis_wait: float | None

    def allow_request(self, request: Any, view: Any) -> bool:
        throttle: Any = self
        if throttle.rate is None or not _in_redis(throttle.cache):
            return super().allow_request(request, view)  # type: ignore[misc,no-any-return]
        key = throttle.get_cache_key(request, view)
        if key is None:
            return True
        (outcome,) = sliding_window_hits(
            throttle.cache, [(key, throttle.duration, throttle.num_requests)]
        )
        if outcome == ALLOWED:
            return True
        self._redis_wait = outcome
        return False

    def wait(self) -> float | None:
        if hasattr(self, "_redis_wait"):
            return self._redis_wait
        return super().wait()  # type: ignore[misc,no-any-return]


class _ClientIpMixin:
    def get_ident(self, request: Any) -> str:
        return rate_limit_ident(client_ip(request))


class AnonThrottle(_ClientIpMixin, _CountedInRedis, AnonRateThrottle):
    """``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["anon"]`` per client address."""


class UserThrottle(_ClientIpMixin, _CountedInRedis, UserRateThrottle):
    """``...["user"]`` per signed-in user (per client address when anonymous)."""


# The project-wide limits (REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]), for views that add
# their own.
DEFAULT_THROTTLES = [AnonThrottle, UserThrottle]


class IpThrottle(_ClientIpMixin, _CountedInRedis, SimpleRateThrottle):
    """A limit per client address whoever is signed in, for endpoints anyone may call
    that cost us something (a row, a hash, a token). Subclasses set ``scope`` and
    ``rate``."""

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class BatchedThrottlesMixin:
    """For an APIView on a hot path: every throttle counted at once — in one Redis call
    (``sliding_window_hits``), or with one cache read and one write (one per duration)
    on another cache — by DRF's rules otherwise: a throttle that allows the request
    records it even when another refuses, and the longest wait wins. Throttles of another
    kind (or cache) are asked as DRF asks them."""

    def check_throttles(self, request: Any) -> None:
        batched: list[tuple[Any, str]] = []  # (a SimpleRateThrottle, its cache key)
        others = []
        for throttle in self.get_throttles():  # type: ignore[attr-defined]
            if not _batchable(throttle):
                others.append(throttle)
            elif throttle.rate is not None:
                key = throttle.get_cache_key(request, self)
                if key is not None:
                    batched.append((throttle, key))
        waits: list[float | None] = []
        if batched and _in_redis(batched[0][0].cache):
            outcomes = sliding_window_hits(
                batched[0][0].cache,
                [(key, throttle.duration, throttle.num_requests) for throttle, key in batched],
            )
            waits += [outcome for outcome in outcomes if outcome != ALLOWED]
        elif batched:
            waits += _counted_in_cache(batched)
        for throttle in others:
            if not throttle.allow_request(request, self):
                waits.append(throttle.wait())
        if waits:
            known = [wait for wait in waits if wait is not None]
            self.throttled(request, max(known, default=None))  # type: ignore[attr-defined]


def _counted_in_cache(batched: list[tuple[Any, str]]) -> list[float | None]:
    """DRF's histories read at once and written back at once; the refusals' waits."""
    cache = batched[0][0].cache
    histories = cache.get_many([key for _, key in batched])
    now = time.time()
    waits = []
    writes: dict[int, dict[str, list[float]]] = defaultdict(dict)
    for throttle, key in batched:
        throttle.key, throttle.now = key, now
        throttle.history = [at for at in histories.get(key, []) if at > now - throttle.duration]
        if len(throttle.history) >= throttle.num_requests:
            waits.append(throttle.wait())
        else:
            throttle.history.insert(0, now)
            writes[throttle.duration][key] = throttle.history
    for duration, values in writes.items():
        cache.set_many(values, duration)
    return waits


def _batchable(throttle: Any) -> bool:
    """DRF's own counting (not overridden, or ours in Redis), on the default cache."""
    from django.core.cache import cache

    counting = (SimpleRateThrottle.allow_request, _CountedInRedis.allow_request)
    return (
        isinstance(throttle, SimpleRateThrottle)
        and type(throttle).allow_request in counting
        and type(throttle).throttle_success is SimpleRateThrottle.throttle_success
        and throttle.cache is cache
    )
