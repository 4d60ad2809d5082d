"""Per-client rate limits for the sign-in endpoints (keyed by client IP)."""

from __future__ import annotations

from typing import Any

from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

# The project-wide limits (REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]) still apply.
DEFAULT_THROTTLES = [AnonRateThrottle, UserRateThrottle]


class _IpThrottle(SimpleRateThrottle):
    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class ConnectThrottle(_IpThrottle):
    """``POST /connections/connect``: each call creates a session and a state."""

    scope = "connections_connect"
    rate = "20/min"


class RefreshThrottle(_IpThrottle):
    scope = "auth_refresh"
    rate = "30/min"


class DeviceStartThrottle(_IpThrottle):
    scope = "device_start"
    rate = "10/min"


class DevicePollThrottle(_IpThrottle):
    """A hard ceiling above RFC 8628's ``slow_down`` handling, against runaway clients."""

    scope = "device_poll"
    rate = "60/min"
