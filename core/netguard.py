"""Requests to hosts a user chose (an OpenAI-compatible base URL): resolve the host once,
refuse private addresses, and connect to exactly the addresses that were vetted.

Vetting a host and then letting the HTTP library resolve it again leaves a window in which
the second answer can differ (DNS rebinding). ``GuardedTransport`` closes it: it resolves
and vets inside the transport, then sends the request to the vetted address itself, while
the ``Host`` header, TLS SNI and certificate verification keep using the host name.

The transport is an ``httpx2`` one because that is what the openai SDK runs on.
"""

from __future__ import annotations

import ipaddress
import socket

import httpx2

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 forms that carry an IPv4 address the packets end up at (RFC 6052 NAT64, 6to4).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressRefused(Exception):
    """The host does not resolve, or resolves to an address we will not connect to."""


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast, including any IPv4 address embedded in an IPv6 one:
    no private, loopback, link-local, multicast, reserved or unspecified address."""
    embedded: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            embedded.append(address.ipv4_mapped)
        if address.sixtofour:
            embedded.append(address.sixtofour)
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return all(each.is_global and not each.is_multicast for each in embedded)


def resolve(host: str, *, allow_private: bool) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order, from one lookup.

    One non-public answer refuses them all (unless ``allow_private``), so a round-robin
    answer cannot slip an internal address in beside a public one.
    """
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise AddressRefused("the host does not resolve") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private and not all(is_public(ipaddress.ip_address(a)) for a in addresses):
        raise AddressRefused("the host is a private or local address")
    return addresses


class GuardedTransport(httpx2.HTTPTransport):
    """Sends each request to an address its host resolved to and that passed the vetting.

    Env proxies are not used (httpx2 reads them only without a custom transport): a proxy
    would resolve the host again.
    """

    def __init__(self, *, allow_private: bool) -> None:
        super().__init__()
        self._allow_private = allow_private

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        try:
            addresses = resolve(url.host, allow_private=self._allow_private)
        except AddressRefused as exc:
            raise httpx2.ConnectError(str(exc), request=request) from None
        # The Host header was set from the URL when the request was built; TLS SNI and the
        # certificate check follow this extension instead of the address we dial.
        request.extensions["sni_hostname"] = url.host
        try:
            # Like socket.create_connection: the next address when one cannot be reached.
            for address in addresses[:-1]:
                request.url = url.copy_with(host=address)
                try:
                    return super().handle_request(request)
                except httpx2.ConnectError:
                    continue
            request.url = url.copy_with(host=addresses[-1])
            return super().handle_request(request)
        finally:
            request.url = url
