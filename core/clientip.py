"""The client's address: the one place that reads ``X-Forwarded-For``.

Rate limits, allauth, audit rows and the device-code slow-down all call :func:`client_ip`,
so they agree on who a request came from; rate limits count by :func:`rate_limit_ident`.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request

# The IPv6 network one client is assumed to hold (allauth's default too:
# ALLAUTH_RATE_LIMIT_IPV6_PREFIX).
IPV6_PREFIX = 64


def client_ip(request: HttpRequest | Request) -> str:
    """The address of the client that sent ``request``, or ``""`` if none is valid.

    Each of the ``TRUSTED_PROXY_COUNT`` proxies in front of Kay appends the address it
    received the request from to ``X-Forwarded-For``, so the N-th address from the right
    is the client; everything left of it was written by the client and may be forged.
    With 0 (no proxy), or when the TCP peer (``REMOTE_ADDR``) is not in
    ``TRUSTED_PROXY_NETWORKS``, the header is ignored and the peer is the client. A
    request that passed fewer proxies than configured (fewer addresses) yields the leftmost
    one, which a trusted proxy wrote.
    """
    meta = request.META
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")
    peer = _valid(meta.get("REMOTE_ADDR", ""))
    if proxies > 0 and forwarded and _is_proxy(peer):
        hops = forwarded.split(",")
        address = _valid(hops[-min(proxies, len(hops))])
        if address:
            return address
    return peer


def _is_proxy(peer: str) -> bool:
    """Whether the TCP peer is in ``TRUSTED_PROXY_NETWORKS``: a client that reaches Kay's
    port directly (past the proxy) writes its own ``X-Forwarded-For``."""
    return bool(peer) and any(
        ipaddress.ip_address(peer) in network
        for network in _networks(tuple(settings.TRUSTED_PROXY_NETWORKS))
    )


@lru_cache(maxsize=4)
def _networks(
    values: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


def rate_limit_ident(address: str) -> str:
    """What a rate limit counts for ``address``: an IPv4 address itself, an IPv6 address
    its /64 network (``2001:db8::/64``), as allauth does.

    One host or home line is routinely given a whole /64, so counting single IPv6
    addresses would give one client 2**64 budgets.
    """
    if ":" not in address:
        return address
    network = ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False)
    return str(network)


def _valid(raw: str) -> str:
    """``raw`` as a canonical IP address (so ``::0001`` and ``::1`` count as one), or ``""``.

    An IPv4 client of a dual-stack listener arrives as ``::ffff:203.0.113.5``: that is the
    IPv4 address, not an IPv6 one (whose /64 every IPv4 client would share). A zone id
    (``%eth0``) names a local interface, not a client.
    """
    try:
        address = ipaddress.ip_address(raw.strip().split("%", 1)[0])
    except ValueError:
        return ""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)
