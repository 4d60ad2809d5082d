"""Per-client rate limits for the API, keyed by the client address of ``core.clientip``.

DRF's own ``get_ident`` trusts a forged ``X-Forwarded-For`` unless told how many proxies
there are, and counts each IPv6 address apart; these classes ask the functions the rest of
Kay uses (an IPv6 client counts by its /64).
"""

from __future__ import annotations

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
