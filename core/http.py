"""Outgoing HTTP: every httpx client is built here, and a base URL a user chose is vetted
here before anything is sent to it.

Outside services' addresses come from settings, so tests point them at fakes on
127.0.0.1. A user's own server (an OpenAI-compatible base URL) is checked with
:func:`check_base_url` when it is entered, then reached only through
``core.netguard.GuardedTransport``, which vets the addresses again as it connects.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

import httpx
import httpx2

from core.errors import ApplicationError
from core.netguard import AddressRefused, resolve

# Building a verifying SSL context loads every trusted certificate (~20 ms of CPU), which
# httpx does for each new client unless given one: fetches that each build a client paid it
# per request. A context is a read-only trust store (it still checks every certificate and
# host name), so one per process serves every client. Built on first use, from what the
# library would load itself (so SSL_CERT_FILE / SSL_CERT_DIR still apply).


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default context (certifi's roots): for :func:`http_client`."""
    return httpx.create_ssl_context()


@functools.cache
def sdk_tls_context() -> ssl.SSLContext:
    """httpx2's default context (the system's roots), the one the ``openai`` SDK's client
    builds for itself: pass it as ``verify=`` to ``openai.DefaultHttpxClient``."""
    return httpx2.create_ssl_context()


def http_client(
    *,
    timeout: float | httpx.Timeout,
    headers: Mapping[str, str] | None = None,
    base_url: str = "",
    connections: int | None = None,
) -> httpx.Client:
    """A client for one outside service (``connections``: how many it may keep open at
    once, for one that fetches in parallel). It follows no redirect: one would carry the
    request, and its credentials, wherever the answer points."""
    pool: dict[str, Any] = {}
    if connections:
        pool["limits"] = httpx.Limits(
            max_connections=connections, max_keepalive_connections=connections
        )
    return httpx.Client(
        base_url=base_url,
        timeout=timeout,
        headers=headers,
        follow_redirects=False,
        verify=tls_context(),
        **pool,
    )


def check_base_url(url: str, *, allow_private: bool) -> str:
    """A user-supplied base URL without its trailing slash, refused (400 naming the
    ``base_url`` field) when it could reach into our own network.

    Unless ``allow_private`` (development only), only public https addresses pass, so a
    request to it cannot probe internal services.
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ApplicationError("Enter an http(s) base URL.", fields={"base_url": ["Invalid URL."]})
    if parsed.username or parsed.password:
        # The base URL is stored and shown in clear (detail page, admin): no secrets in it.
        raise ApplicationError(
            "Put credentials in the key field, not in the base URL.",
            fields={"base_url": ["No user name or password in the URL."]},
        )
    if allow_private:
        return url.rstrip("/")
    if parsed.scheme != "https":
        raise ApplicationError("The base URL must use https.", fields={"base_url": ["Use https."]})
    # An early answer for the form; the request itself resolves and vets again, then
    # connects to the address it vetted (GuardedTransport). Nothing is sent before the
    # refusal, so it cannot tell whether anything listens there.
    try:
        resolve(parsed.hostname, allow_private=False)
    except AddressRefused as exc:
        raise ApplicationError(
            f"The base URL cannot be used: {exc}.",
            fields={"base_url": ["Use a public host name or address."]},
        ) from None
    return url.rstrip("/")
