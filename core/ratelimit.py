"""Fixed-window rate limits kept in the shared cache (Redis in production).

``limit("fetch", user_id, settings.KEYS_FETCH_RATE)`` counts one hit and raises
``RateLimited`` (429 with ``Retry-After``) once the window's budget is spent. To limit
only failures, ``ensure_budget`` refuses a spent budget without counting and ``hit``
counts a failure once it happened. ``count_up`` is the counter under all of them, for
limits of another shape (the device login's growing delays).
"""

from __future__ import annotations

import time

from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

from core.errors import RateLimited

_PERIODS = {"s": 1, "sec": 1, "min": 60, "m": 60, "hour": 3600, "h": 3600, "day": 86400, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """``"30/min"`` → ``(30, 60)``: requests allowed per period of seconds."""
    try:
        count, period = rate.split("/", 1)
        return int(count), _PERIODS[period.strip().lower()]
    except (ValueError, KeyError):
        raise ImproperlyConfigured(f"rate {rate!r} is not N/s, N/min, N/hour or N/day") from None


def _key(scope: str, ident: object, period: int) -> str:
    return f"rl:{scope}:{ident}:{int(time.time()) // period}"


def count_up(key: str, timeout: int) -> int:
    """Add one to the cache counter ``key`` (created for ``timeout`` seconds); the count."""
    cache.add(key, 0, timeout=timeout)
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=timeout)
        return 1


def hit(scope: str, ident: object, rate: str) -> int:
    """Count one hit of ``scope`` for ``ident`` in the current window; the count so far."""
    _, period = parse_rate(rate)
    return count_up(_key(scope, ident, period), period + 1)


def limit(scope: str, ident: object, rate: str) -> None:
    """Count one hit of ``scope`` for ``ident``; raise ``RateLimited`` past the limit."""
    if hit(scope, ident, rate) > parse_rate(rate)[0]:
        raise _limited(scope, rate)


def ensure_budget(scope: str, ident: object, rate: str) -> None:
    """Raise ``RateLimited`` if this window's budget is already spent (counts nothing)."""
    allowed, period = parse_rate(rate)
    if (cache.get(_key(scope, ident, period)) or 0) >= allowed:
        raise _limited(scope, rate)


def _limited(scope: str, rate: str) -> RateLimited:
    period = parse_rate(rate)[1]
    retry_after = max(1, period - int(time.time()) % period)
    return RateLimited(
        f"Too many {scope.replace('_', ' ')} requests: the limit is {rate}. "
        f"Try again in {retry_after} s.",
        retry_after=retry_after,
    )
