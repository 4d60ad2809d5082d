"""Starting OAuth: a (new or given) Kay session, a single-use state, the CLI's user code,
and the provider's authorization URL."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.devices import USER_CODE_ALPHABET, USER_CODE_LENGTH, user_code_format
from accounts.models import User
from accounts.services import NOWHERE, RequestOrigin
from connections.models import (
    KaySession,
    OAuthState,
)
from connections.providers import provider_module
from connections.registry import service_get
from connections.services.common import (
    SESSION_PREFIX,
    STATE_LIFETIME,
    kay_session_find,
    pkce_challenge,
    pkce_verifier,
    redirect_uri,
)
from core.errors import ApplicationError
from core.hashing import token_hash


def user_code_new() -> str:
    """The short code a CLI prints and the confirmation page repeats (RFC 8628 alphabet)."""
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


@dataclass(frozen=True)
class ConnectStart:
    service: str
    session_id: str
    authorization_url: str
    state: str
    user_code: str


def _session_for_connect(*, session_id: str, user: Any) -> KaySession:
    """The given session; one already signed in needs its own account's Bearer token, so a
    leaked ``session_id`` cannot swap the session's connections for someone else's."""
    session = kay_session_find(session_id=session_id, user=user)
    if session.user_id is not None and not getattr(user, "is_authenticated", False):
        raise ApplicationError(
            "This session is signed in: send its session token as Authorization: Bearer "
            "to connect another service.",
            code="authentication_required",
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="kay"'},
        )
    return session


@transaction.atomic
def connection_start(
    *,
    service: str,
    session_id: str | None = None,
    user: User | None = None,
    origin: str = OAuthState.Origin.CLI,
    browser_nonce: str = "",
    request_origin: RequestOrigin = NOWHERE,
) -> ConnectStart:
    """Begin OAuth for ``service``: a (new or given) Kay session and a single-use state.

    A dashboard start is bound to the browser (``browser_nonce``, kept in its Django
    session) and to ``user``: only they can finish it (RFC 9700 §4.7.1).
    """
    spec = service_get(service)
    raw_session = session_id or ""
    if origin == OAuthState.Origin.DASHBOARD:
        if user is None or not browser_nonce:
            raise ApplicationError("Sign in to connect from the dashboard.", status=403)
        # The dashboard never shows a session id; any of the user's sessions will do.
        session = KaySession.objects.filter(user=user).first() or KaySession.objects.create(
            key_hash=token_hash(SESSION_PREFIX + secrets.token_urlsafe(32)), user=user
        )
    elif session_id:
        session = _session_for_connect(session_id=session_id, user=user)
    else:
        raw_session = SESSION_PREFIX + secrets.token_urlsafe(32)
        session = KaySession.objects.create(key_hash=token_hash(raw_session))
    session.last_used_at = timezone.now()
    session.save(update_fields=["last_used_at"])

    state = secrets.token_urlsafe(32)
    user_code = user_code_new()
    now = timezone.now()
    OAuthState.objects.create(
        state_hash=token_hash(state),
        session=session,
        service=spec.name,
        origin=origin,
        created_at=now,
        expires_at=now + STATE_LIFETIME,
        user=user if origin == OAuthState.Origin.DASHBOARD else None,
        browser_hash=token_hash(browser_nonce) if browser_nonce else "",
        user_code=user_code,
        client_ip=request_origin.ip,
        client_name=request_origin.client[:200],
    )
    challenge = pkce_challenge(pkce_verifier(state)) if spec.pkce else None
    url = provider_module(spec.provider).authorize_url(
        scopes=spec.scopes, state=state, redirect_uri=redirect_uri(spec), code_challenge=challenge
    )
    return ConnectStart(spec.name, raw_session, url, state, user_code_format(user_code))
