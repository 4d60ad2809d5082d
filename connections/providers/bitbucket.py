"""Bitbucket Cloud OAuth 2.0: its own consumer (``BITBUCKET_CLIENT_ID/SECRET``).

URLs: ``<BITBUCKET_AUTH_URL>/authorize``, ``<BITBUCKET_AUTH_URL>/access_token`` (client
credentials as HTTP Basic), ``<BITBUCKET_API_URL>/user`` and ``/user/emails``. A
Bitbucket user's ``account_id`` is their Atlassian account id.
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

LABEL = "Bitbucket"


def authorize_url(
    *, scopes: tuple[str, ...], state: str, redirect_uri: str, code_challenge: str | None
) -> str:
    client_id, _ = oauth_credentials(LABEL, "BITBUCKET")
    params = {
        "client_id": client_id,
        "response_type": "code",
        "state": state,
        "redirect_uri": redirect_uri,
    }
    if scopes:
        params["scope"] = " ".join(scopes)
    return f"{settings.BITBUCKET_AUTH_URL.rstrip('/')}/authorize?{urlencode(params)}"


def _token(grant: dict[str, str]) -> OAuthTokens:
    url = f"{settings.BITBUCKET_AUTH_URL.rstrip('/')}/access_token"
    return token_request(LABEL, "BITBUCKET", url, grant, basic_auth=True)


def exchange_code(*, code: str, redirect_uri: str, code_verifier: str | None) -> OAuthTokens:
    return _token({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri})


def refresh(*, refresh_token: str) -> OAuthTokens:
    return _token({"grant_type": "refresh_token", "refresh_token": refresh_token})


def fetch_identity(*, access_token: str) -> Identity:
    base = settings.BITBUCKET_API_URL.rstrip("/")
    with client() as http:
        user = get_json(LABEL, http, f"{base}/user", access_token)
        if not isinstance(user, dict) or not (user.get("account_id") or user.get("uuid")):
            raise ProviderError(f"{LABEL} returned a user without an account id.")
        try:
            emails = get_json(LABEL, http, f"{base}/user/emails", access_token)
        except ProviderError:
            emails = {}  # the consumer may lack the "email" scope
    primary = next(
        (
            item
            for item in (emails.get("values", []) if isinstance(emails, dict) else [])
            if isinstance(item, dict) and item.get("is_primary")
        ),
        {},
    )
    avatar = user.get("links", {}).get("avatar", {}).get("href", "")
    return Identity(
        account_id=str(user.get("account_id") or user.get("uuid")),
        name=str(user.get("display_name") or user.get("nickname") or ""),
        email=str(primary.get("email") or ""),
        email_verified=bool(primary.get("is_confirmed")),
        picture=str(avatar or ""),
        account_type="bitbucket",
        account_status=str(user.get("account_status") or ""),
    )


def fetch_resources(*, access_token: str) -> list[Resource]:
    """Bitbucket has no Atlassian sites; workspaces are listed by the assistant when needed."""
    return []
