"""Per-client rate limits for the API, keyed by the client address of ``core.clientip``.

DRF's own ``get_ident`` trusts a forged ``X-Forwarded-For`` unless told how many proxies
there are, and counts each IPv6 address apart; these classes ask the functions the rest of
Kay uses (an IPv6 client counts by its /64).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

from core.clientip import client_ip, rate_limit_ident


class _ClientIpMixin:
    def get_ident(self, request: Any) -> str:
        return rate_limit_ident(client_ip(request))


class AnonThrottle(_ClientIpMixin, AnonRateThrottle):
    """``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["anon"]`` per client address."""


class UserThrottle(_ClientIpMixin, UserRateThrottle):
    """``...["user"]`` per signed-in user (per client address when anonymous)."""


# The project-wide limits (REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]), for views that add
# their own.
DEFAULT_THROTTLES = [AnonThrottle, UserThrottle]


class IpThrottle(_ClientIpMixin, SimpleRateThrottle):
    """A limit per client address whoever is signed in, for endpoints anyone may call
    that cost us something (a row, a hash, a token). Subclasses set ``scope`` and
    ``rate``."""

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class BatchedThrottlesMixin:
    """For an APIView on a hot path: DRF checks each throttle with a cache read and a cache
    write (two round trips each); this reads every throttle's history at once and writes
    them back at once (one write per duration), by DRF's rules otherwise: a throttle that
    allows the request records it even when another refuses, and the longest wait wins.
    Throttles of another kind (or cache) are asked as DRF asks them."""

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
        waits = []
        if batched:
            cache = batched[0][0].cache
            histories = cache.get_many([key for _, key in batched])
            now = time.time()
            writes: dict[int, dict[str, list[float]]] = defaultdict(dict)
            for throttle, key in batched:
                throttle.key, throttle.now = key, now
                throttle.history = [
                    at for at in histories.get(key, []) if at > now - throttle.duration
                ]
                if len(throttle.history) >= throttle.num_requests:
                    waits.append(throttle.wait())
                else:
                    throttle.history.insert(0, now)
                    writes[throttle.duration][key] = throttle.history
            for duration, values in writes.items():
                cache.set_many(values, duration)
        for throttle in others:
            if not throttle.allow_request(request, self):
                waits.append(throttle.wait())
        if waits:
            known = [wait for wait in waits if wait is not None]
            self.throttled(request, max(known, default=None))  # type: ignore[attr-defined]


def _batchable(throttle: Any) -> bool:
    """DRF's own counting (not overridden), on the default cache."""
    from django.core.cache import cache

    return (
        isinstance(throttle, SimpleRateThrottle)
        and type(throttle).allow_request is SimpleRateThrottle.allow_request
        and type(throttle).throttle_success is SimpleRateThrottle.throttle_success
        and throttle.cache is cache
    )
