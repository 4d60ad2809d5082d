"""Per-user fixed-window rate limits kept in the shared cache (Redis in production).

``limit("fetch", user_id, settings.KEYS_FETCH_RATE)`` counts one hit and raises
``RateLimited`` (429 with ``Retry-After``) once the window's budget is spent.
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


def limit(scope: str, ident: object, rate: str) -> None:
    """Count one hit of ``scope`` for ``ident``; raise ``RateLimited`` past the limit."""
    allowed, period = parse_rate(rate)
    now = int(time.time())
    window = now // period
    key = f"keys:rl:{scope}:{ident}:{window}"
    cache.add(key, 0, timeout=period + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=period + 1)
        count = 1
    if count > allowed:
        retry_after = max(1, period - now % period)
        raise RateLimited(
            f"Too many {scope} requests: the limit is {rate}. Try again in {retry_after} s.",
            retry_after=retry_after,
        )
