"""Atlassian OAuth 2.0 (3LO): authorize, token, accessible resources and the profile.

URLs: ``<ATLASSIAN_AUTH_URL>/authorize``, ``<ATLASSIAN_AUTH_URL>/oauth/token``,
``<ATLASSIAN_API_URL>/oauth/token/accessible-resources`` and ``<ATLASSIAN_API_URL>/me``.
Refresh tokens rotate: every refresh returns a new one and spends the old.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings

from connections.providers import (
    Identity,
    OAuthTokens,
    Resource,
    client,
    get_json,
    oauth_credentials,
    token_request,
)
from core.errors import ProviderError

LABEL = "Atlassian"


def authorize_url(
    *, scopes: tuple[str, ...], state: str, redirect_uri: str, code_challenge: str | None
) -> str:
    client_id, _ = oauth_credentials(LABEL, "ATLASSIAN")
    params = {
        "audience": "api.atlassian.com",
        "client_id": client_id,
        "scope": " ".join(scopes),
        "redirect_uri": redirect_uri,
        "state": state,
        "response_type": "code",
        "prompt": "consent",
    }
    if code_challenge:
        params |= {"code_challenge": code_challenge, "code_challenge_method": "S256"}
    return f"{settings.ATLASSIAN_AUTH_URL.rstrip('/')}/authorize?{urlencode(params)}"


def _token(grant: dict[str, str]) -> OAuthTokens:
    url = f"{settings.ATLASSIAN_AUTH_URL.rstrip('/')}/oauth/token"
    return token_request(LABEL, "ATLASSIAN", url, grant)


def exchange_code(*, code: str, redirect_uri: str, code_verifier: str | None) -> OAuthTokens:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if code_verifier:
        form["code_verifier"] = code_verifier
    return _token(form)


def refresh(*, refresh_token: str) -> OAuthTokens:
    return _token({"grant_type": "refresh_token", "refresh_token": refresh_token})


def fetch_identity(*, access_token: str) -> Identity:
    with client() as http:
        body = get_json(LABEL, http, f"{settings.ATLASSIAN_API_URL.rstrip('/')}/me", access_token)
    if not isinstance(body, dict) or not body.get("account_id"):
        raise ProviderError(f"{LABEL} returned a profile without an account id.")
    return Identity(
        account_id=str(body["account_id"]),
        name=str(body.get("name") or body.get("nickname") or ""),
        email=str(body.get("email") or ""),
        email_verified=bool(body.get("email_verified")),
        picture=str(body.get("picture") or ""),
        account_type=str(body.get("account_type") or ""),
        account_status=str(body.get("account_status") or ""),
    )


def fetch_resources(*, access_token: str) -> list[Resource]:
    url = f"{settings.ATLASSIAN_API_URL.rstrip('/')}/oauth/token/accessible-resources"
    with client() as http:
        body = get_json(LABEL, http, url, access_token)
    if not isinstance(body, list):
        raise ProviderError(f"{LABEL} returned accessible resources in an unknown shape.")
    return [
        Resource(
            id=str(item.get("id", "")),
            name=str(item.get("name", "")),
            url=str(item.get("url", "")),
            scopes=[str(scope) for scope in item.get("scopes", [])],
            avatar_url=str(item.get("avatarUrl", "")),
        )
        for item in body
        if isinstance(item, dict) and item.get("id")
    ]
