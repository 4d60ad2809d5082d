"""What every connections service shares: state lifetime, PKCE, the redirect URI, and
finding a CLI's Kay session."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta
from typing import Any

from django.conf import settings

from accounts.models import SecurityEvent
from connections.models import (
    KaySession,
)
from connections.registry import ServiceSpec
from core.errors import NotFound
from core.hashing import token_hash

STATE_LIFETIME = timedelta(minutes=10)
SESSION_PREFIX = "kaysession_"
SecurityKind = SecurityEvent.Kind


def pkce_verifier(state: str) -> str:
    """The PKCE verifier for a state, derived with SECRET_KEY so nothing is stored."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"pkce|{state}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def redirect_uri(spec: ServiceSpec) -> str:
    base = (
        settings.BITBUCKET_CALLBACK_URL
        if spec.provider == "bitbucket"
        else settings.ATLASSIAN_CALLBACK_URL
    )
    return f"{base}?service={spec.name}"


def kay_session_find(*, session_id: str, user: Any = None) -> KaySession:
    """The session a ``session_id`` names; 404 if unknown or another account's."""
    session = KaySession.objects.filter(key_hash=token_hash(session_id or "")).first()
    if session is None or (
        user is not None
        and getattr(user, "is_authenticated", False)
        and session.user_id is not None
        and session.user_id != user.pk
    ):
        raise NotFound("No such session.")
    return session
