"""``Authorization: Bearer`` for the API: a CLI session JWT or a personal API token.

A Bearer value that is not one of our JWTs is rejected with 401 ``invalid_token``
(``POST /api/keys/fetch`` checks its server secret itself and uses no authentication
class). A token that *is* ours but expired, revoked or outdated is rejected with 401 and a
message saying what to do.
"""

from __future__ import annotations

from typing import Any, cast

import jwt as pyjwt
from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication
from rest_framework.request import Request

from accounts.models import User
from accounts.tokens import (
    CliSessionToken,
    PersonalApiToken,
    TokenRejected,
    api_token_authenticate,
    cli_session_is_usable,
    decode_our_jwt,
)
from core.ids import parse_id

_TOKEN_CLASSES = {"cli_session": CliSessionToken, "api": PersonalApiToken}


def user_of(request: Any) -> User:
    """The signed-in user of a request that passed ``login_required`` or
    ``IsAuthenticated``, typed as ours."""
    return cast(User, request.user)


def bearer_value(request: Any) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _our_token_type(raw: str) -> str | None:
    """The ``token_type`` of an unverified JWT issued by Kay, else ``None``."""
    try:
        claims = pyjwt.decode(raw, options={"verify_signature": False})
    except pyjwt.PyJWTError:
        return None
    issuer = settings.SIMPLE_JWT.get("ISSUER")
    token_type = claims.get("token_type")
    if claims.get("iss") != issuer or token_type not in _TOKEN_CLASSES:
        return None
    return str(token_type)


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """Sets ``request.auth`` to ``{"kind": "cli_session"|"api", ...claims}``."""

    def authenticate(self, request: Request) -> tuple[User, dict[str, Any]] | None:
        raw = bearer_value(request)
        if raw is None:
            return None
        token_type = _our_token_type(raw)
        if token_type is None:
            # Someone sent a Bearer token that is not ours (a typo, another service's
            # token): say so, rather than "credentials were not provided".
            raise TokenRejected(
                "The Bearer token is not a Kay token. Send a CLI session token or a personal "
                "API token.",
                code="invalid_token",
            )
        payload = dict(decode_our_jwt(raw, _TOKEN_CLASSES[token_type]).payload)
        if token_type == "api":
            user, row = api_token_authenticate(payload)
            return user, {"kind": "api", "api_token_id": row.pk, **payload}
        user_id = parse_id(str(payload.get("sub", "")))
        if user_id is None:
            raise TokenRejected("The token is not valid. Sign in again.")
        if not cli_session_is_usable(public_id=str(payload.get("sid", "")), user_id=user_id):
            raise TokenRejected("This sign-in was ended. Sign in again.", code="session_revoked")
        found = User.objects.filter(pk=user_id, is_active=True).first()
        if found is None:
            raise TokenRejected("This account is disabled.", code="account_disabled")
        return found, {"kind": "cli_session", **payload}

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="kay"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Documents the Bearer scheme in the OpenAPI schema (``/api/docs/``)."""

    target_class = "accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A CLI session token (GET /auth/status, POST /auth/refresh, "
            "device login) or a personal API token (POST /api/token).",
        }
