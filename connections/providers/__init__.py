"""One adapter per outside OAuth provider, all over httpx, all URLs from settings.

Each module offers ``authorize_url``, ``exchange_code``, ``refresh``, ``fetch_identity``
and ``fetch_resources``. They take secrets as arguments, never read the database, and
turn transport and vendor errors into :class:`core.errors.ProviderError` (never echoing
a token): :class:`core.errors.ProviderUnavailable` when trying again later may work
(network errors, 5xx, 429 with its ``Retry-After``), so Celery tasks can retry those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import ModuleType
from typing import Any

import httpx
from django.conf import settings

from core.errors import NotConfigured, ProviderError, ProviderUnavailable
from core.http import http_client

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# Answers that say "not now" rather than "no" (as models_catalog/openrouter.py retries).
RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class InvalidGrant(ProviderError):
    """The provider refused a code or refresh token for good (RFC 6749 ``invalid_grant``)."""

    status = 400
    code = "invalid_grant"


@dataclass(frozen=True)
class OAuthTokens:
    access_token: str
    refresh_token: str | None
    expires_in: int | None
    scopes: str


@dataclass(frozen=True)
class Identity:
    account_id: str
    name: str = ""
    email: str = ""
    email_verified: bool = False
    picture: str = ""
    account_type: str = ""
    account_status: str = ""


@dataclass(frozen=True)
class Resource:
    id: str
    name: str
    url: str
    scopes: list[str] = field(default_factory=list)
    avatar_url: str = ""


def oauth_credentials(label: str, prefix: str) -> tuple[str, str]:
    """The ``<PREFIX>_CLIENT_ID`` / ``<PREFIX>_CLIENT_SECRET`` pair, or a clear 503."""
    client_id = getattr(settings, f"{prefix}_CLIENT_ID", "")
    client_secret = getattr(settings, f"{prefix}_CLIENT_SECRET", "")
    if not client_id or not client_secret:
        raise NotConfigured(
            f"{label} connections are not available on this server.",
            code="provider_not_configured",
            operator_hint=f"{label} connections are not configured: set {prefix}_CLIENT_ID "
            f"and {prefix}_CLIENT_SECRET.",
        )
    return client_id, client_secret


def credentials_configured(prefix: str) -> bool:
    """Whether the operator set ``<PREFIX>_CLIENT_ID`` and ``<PREFIX>_CLIENT_SECRET``."""
    return bool(
        getattr(settings, f"{prefix}_CLIENT_ID", "")
        and getattr(settings, f"{prefix}_CLIENT_SECRET", "")
    )


def client() -> httpx.Client:
    return http_client(timeout=TIMEOUT, headers={"Accept": "application/json"})


def retry_after(response: httpx.Response) -> float | None:
    """The wait ``Retry-After`` asks for, in seconds (it may be seconds or an HTTP date)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):  # not a date, or one without a time zone
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def send(label: str, http: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request; a network error or a "not now" status is :class:`ProviderUnavailable`."""
    try:
        response = http.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        raise ProviderUnavailable(f"{label} did not answer ({type(exc).__name__}).") from None
    except httpx.HTTPError as exc:
        raise ProviderError(f"{label} did not answer ({type(exc).__name__}).") from None
    if response.status_code in RETRY_STATUSES:
        raise ProviderUnavailable(
            f"{label} answered {response.status_code} for {url.split('?')[0]}; try again later.",
            retry_after=retry_after(response),
        )
    return response


def token_response(label: str, response: httpx.Response) -> OAuthTokens:
    """Parse an RFC 6749 token response; ``invalid_grant`` becomes :class:`InvalidGrant`."""
    body: Any
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code >= 400 or not isinstance(body, dict) or "access_token" not in body:
        error = body.get("error") if isinstance(body, dict) else None
        if error == "invalid_grant":
            raise InvalidGrant(f"{label} refused the grant; connect the service again.")
        raise ProviderError(
            f"{label} token endpoint answered {response.status_code}"
            + (f" ({error})" if isinstance(error, str) else "")
        )
    expires = body.get("expires_in")
    scope = body.get("scope", body.get("scopes", ""))
    return OAuthTokens(
        access_token=str(body["access_token"]),
        refresh_token=str(body["refresh_token"]) if body.get("refresh_token") else None,
        expires_in=int(expires) if isinstance(expires, int | float | str) and expires else None,
        scopes=" ".join(scope) if isinstance(scope, list) else str(scope or ""),
    )


def token_request(
    label: str, prefix: str, url: str, grant: dict[str, str], *, basic_auth: bool = False
) -> OAuthTokens:
    """POST an RFC 6749 grant to a token endpoint with the app's credentials: in the JSON
    body (Atlassian), or as HTTP Basic with a form body (``basic_auth``, Bitbucket)."""
    client_id, client_secret = oauth_credentials(label, prefix)
    if basic_auth:
        body: dict[str, Any] = {"data": grant, "auth": (client_id, client_secret)}
    else:
        body = {"json": {"client_id": client_id, "client_secret": client_secret, **grant}}
    with client() as http:
        response = send(label, http, "POST", url, **body)
    return token_response(label, response)


def get_json(label: str, http: httpx.Client, url: str, access_token: str) -> Any:
    response = send(label, http, "GET", url, headers={"Authorization": f"Bearer {access_token}"})
    if response.status_code >= 400:
        raise ProviderError(f"{label} answered {response.status_code} for {url.split('?')[0]}")
    try:
        return response.json()
    except ValueError:
        raise ProviderError(f"{label} answered with something that is not JSON.") from None


def provider_module(name: str) -> ModuleType:
    from connections.providers import atlassian, bitbucket

    return {"atlassian": atlassian, "bitbucket": bitbucket}[name]
