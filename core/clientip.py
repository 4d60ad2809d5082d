"""The client's address: the one place that reads ``X-Forwarded-For``.

Rate limits, allauth, audit rows and the device-code slow-down all call :func:`client_ip`,
so they agree on who a request came from.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request


def client_ip(request: HttpRequest | Request) -> str:
    """The address of the client that sent ``request``, or ``""`` if none is valid.

    Each of the ``TRUSTED_PROXY_COUNT`` proxies in front of Kay appends the address it
    received the request from to ``X-Forwarded-For``, so the N-th address from the right
    is the client; everything left of it was written by the client and may be forged.
    With 0 (no proxy) the header is ignored and the TCP peer (``REMOTE_ADDR``) is the
    client. A request that passed fewer proxies than configured (fewer addresses) yields
    the leftmost one, which a trusted proxy wrote.
    """
    meta = request.META
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")
    if proxies > 0 and forwarded:
        hops = forwarded.split(",")
        address = _valid(hops[-min(proxies, len(hops))])
        if address:
            return address
    return _valid(meta.get("REMOTE_ADDR", ""))


def _valid(raw: str) -> str:
    """``raw`` as a canonical IP address (so ``::0001`` and ``::1`` count as one), or ``""``."""
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        return ""
