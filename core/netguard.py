"""Requests to hosts a user chose (an OpenAI-compatible base URL): resolve the host once,
refuse private addresses, and connect to exactly the addresses that were vetted.

Vetting a host and then letting the HTTP library resolve it again leaves a window in which
the second answer can differ (DNS rebinding). ``GuardedTransport`` closes it: it resolves
and vets inside the transport, then sends the request to the vetted address itself, while
the ``Host`` header, TLS SNI and certificate verification keep using the host name.

The server at the other end is anyone's, so the transport also bounds what it may cost us:
a request ends by a deadline (the client's connect plus read timeout) however slowly the
server trickles its answer, the body is read up to ``MAX_RESPONSE_BYTES``, and a compressed
body is never inflated (a few kilobytes of gzip can be gigabytes).

The transport is an ``httpx2`` one because that is what the openai SDK runs on.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore2
import httpx2

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 forms that carry an IPv4 address the packets end up at (RFC 6052 NAT64, 6to4).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# A model list is kilobytes; a megabyte-sized answer is not one we need to read whole.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
# When the client set no timeouts at all.
DEFAULT_DEADLINE = 30.0


class AddressRefused(Exception):
    """The host does not resolve, or resolves to an address we will not connect to."""


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast, including any IPv4 address embedded in an IPv6 one:
    no private, loopback, link-local, site-local, multicast, reserved or unspecified
    address."""
    if isinstance(address, ipaddress.IPv6Address) and address in _NAT64:
        # The well-known NAT64 prefix lies in the reserved ::/8; what counts is the IPv4
        # address the translator sends the packets to.
        return _routable(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    embedded: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            embedded.append(address.ipv4_mapped)
        if address.sixtofour:
            embedded.append(address.sixtofour)
    return all(_routable(each) for each in embedded)


def _routable(address: IPAddress) -> bool:
    # ``is_global`` alone passes reserved space on Python 3.11: the deprecated
    # IPv4-compatible ``::127.0.0.1``, SIIT's ``::ffff:0:127.0.0.1``, the local-use NAT64
    # ``64:ff9b:1::/48`` (all in ::/8), and site-local ``fec0::/10``.
    site_local = isinstance(address, ipaddress.IPv6Address) and address.is_site_local
    return (
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and not site_local
    )


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
    """Sends each request to an address its host resolved to and that passed the vetting,
    and bounds the time and bytes the answer may take.

    Env proxies are not used (httpx2 reads them only without a custom transport): a proxy
    would resolve the host again.
    """

    def __init__(
        self, *, allow_private: bool, max_response_bytes: int = MAX_RESPONSE_BYTES
    ) -> None:
        # HTTPTransport's own pool is not built: ours connects through _DeadlineBackend.
        self._allow_private = allow_private
        self._max_bytes = max_response_bytes
        self._deadline = _Deadline()
        self._pool = httpcore2.ConnectionPool(
            ssl_context=httpx2.create_ssl_context(),
            network_backend=_DeadlineBackend(self._deadline),
        )

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        timeouts = request.extensions.get("timeout") or {}
        spans = [timeouts.get("connect"), timeouts.get("read")]
        self._deadline.start(sum(span for span in spans if span) or DEFAULT_DEADLINE)
        # A compressed body is refused below, so ask for none.
        request.headers["Accept-Encoding"] = "identity"
        response = self._send_to_vetted_address(request)
        # The body stays as it came: httpx would inflate it past any cap, so a compressed
        # answer reaches the client as bytes it cannot read, which is what it is.
        headers = [(k, v) for k, v in response.headers.raw if k.lower() != b"content-encoding"]
        return httpx2.Response(
            status_code=response.status_code,
            headers=headers,
            stream=_CappedStream(response.stream, self._max_bytes),
            extensions=response.extensions,
        )

    def _send_to_vetted_address(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        try:
            addresses = resolve(url.host, allow_private=self._allow_private)
        except AddressRefused as exc:
            raise httpx2.ConnectError(str(exc), request=request) from None
        # The Host header was set from the URL when the request was built; TLS SNI and the
        # certificate check follow this extension instead of the address we dial.
        request.extensions["sni_hostname"] = url.host
        try:
            # Like socket.create_connection: the next address when one cannot be reached
            # (all within the one deadline).
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


class _CappedStream(httpx2.SyncByteStream):
    """The response body, refused once it passes ``limit`` bytes."""

    def __init__(self, stream: Any, limit: int) -> None:
        self._stream = stream
        self._limit = limit

    def __iter__(self) -> Iterator[bytes]:
        seen = 0
        for chunk in self._stream:
            seen += len(chunk)
            if seen > self._limit:
                raise httpx2.ReadError(f"the answer is larger than {self._limit} bytes")
            yield chunk

    def close(self) -> None:
        self._stream.close()


class _Deadline:
    """When the current request must be over (``time.monotonic()``)."""

    def __init__(self) -> None:
        self.at = 0.0

    def start(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()


class _DeadlineBackend(httpcore2.NetworkBackend):
    """Connections that are cut when the request's deadline passes.

    Per-operation timeouts do not bound a server that sends one byte just inside each one
    (while connecting over many addresses, during the TLS handshake, in the headers or
    the body); a timer that shuts the socket down does.
    """

    def __init__(self, deadline: _Deadline) -> None:
        self._deadline = deadline
        self._backend = httpcore2.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        remaining = self._deadline.remaining()
        if remaining <= 0:
            raise httpcore2.ConnectTimeout("the deadline passed")
        timeout = remaining if timeout is None else min(timeout, remaining)
        stream = self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _CutOffStream(stream, _CutOff(stream.get_extra_info("socket"), remaining))


class _CutOff:
    """Shuts a connection down at a deadline, from a timer thread.

    It holds its own duplicate of the socket: TLS takes over the original object, and a
    shutdown acts on the connection whichever descriptor names it.
    """

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self._sock = sock.dup()
        self._lock = threading.Lock()
        self.expired = False
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True
        self._timer.start()

    def _cut(self) -> None:
        with self._lock:
            if self._sock.fileno() == -1:  # closed in time
                return
            self.expired = True
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()

    def cancel(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._sock.close()


class _CutOffStream(httpcore2.NetworkStream):
    """A connection's stream; once cut off, what it raises is a timeout."""

    def __init__(self, stream: httpcore2.NetworkStream, cutoff: _CutOff) -> None:
        self._stream = stream
        self._cutoff = cutoff

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            data = self._stream.read(max_bytes, timeout)
        except httpcore2.ReadError:
            self._raise_if_expired()
            raise
        if not data:
            self._raise_if_expired()
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            self._stream.write(buffer, timeout)
        except httpcore2.WriteError:
            self._raise_if_expired()
            raise

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore2.NetworkStream:
        try:
            tls = self._stream.start_tls(ssl_context, server_hostname, timeout)
        except (httpcore2.ConnectError, httpcore2.ConnectTimeout):
            self._cutoff.cancel()  # the failed handshake closed the connection already
            self._raise_if_expired()
            raise
        return _CutOffStream(tls, self._cutoff)

    def close(self) -> None:
        self._cutoff.cancel()
        self._stream.close()

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)

    def _raise_if_expired(self) -> None:
        if self._cutoff.expired:
            raise httpcore2.ReadTimeout("the deadline passed")
