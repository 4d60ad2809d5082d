"""What the CLI polls and asks for: its tokens once, disconnecting a service, and
housekeeping of OAuth states and unused Kay sessions."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import CliSession, User
from accounts.services import NOWHERE, RequestOrigin, security_event_record
from accounts.tokens import TokenPair, cli_session_issue_tokens
from connections.models import (
    Connection,
    KaySession,
    OAuthState,
)
from connections.registry import service_get
from connections.services.common import SecurityKind
from core.errors import ApplicationError, NotFound
from core.hashing import token_hash

TOKENS_COLLECTABLE_FOR = timedelta(minutes=10)


@dataclass(frozen=True)
class AuthStatus:
    """Where a CLI's authorisation stands: still pending, or completed. ``tokens`` only
    in the one poll that collects them; a service added to a session that already has
    tokens completes without any."""

    completed: bool
    service: str = ""
    account_id: str = ""
    tokens: TokenPair | None = None


def auth_status_collect(*, state: str, user: Any = None) -> AuthStatus:
    """``GET /auth/status/<state>``: pending, then the tokens exactly once."""
    found = OAuthState.objects.filter(state_hash=token_hash(state or "")).first()
    if found is None or (
        user is not None
        and getattr(user, "is_authenticated", False)
        and found.user_id not in (None, user.pk)
    ):
        raise NotFound("No such authorisation.")
    if found.status in (OAuthState.Status.PENDING, OAuthState.Status.AWAITING_CONFIRMATION):
        if found.expires_at <= timezone.now():
            _expire_waiting(now=timezone.now(), pk=found.pk)
            raise ApplicationError(
                "The authorisation expired. Start again.", code="expired", status=410
            )
        return AuthStatus(completed=False)
    if found.status == OAuthState.Status.FAILED:
        raise ApplicationError(
            found.error_message or "The authorisation failed.", code=found.error_code or "failed"
        )
    done = AuthStatus(completed=True, service=found.service, account_id=found.account_id)
    if found.cli_session_id is None:
        return done  # not the session's first connection: the CLI already holds tokens
    gone = ApplicationError(
        "These tokens were already collected or have expired. Sign in again.",
        code="already_collected",
        status=410,
    )
    if found.completed_at is None or found.completed_at + TOKENS_COLLECTABLE_FOR <= timezone.now():
        raise gone
    with transaction.atomic():
        claimed = OAuthState.objects.filter(pk=found.pk, status=OAuthState.Status.COMPLETED).update(
            status=OAuthState.Status.COLLECTED
        )
        if not claimed:
            raise gone
        session = CliSession.objects.get(pk=found.cli_session_id)
        return replace(done, tokens=cli_session_issue_tokens(session=session))


def connection_disconnect(
    *, user: User, service: str, request_origin: RequestOrigin = NOWHERE
) -> None:
    """Forget one service's tokens and sites for ``user`` (idempotent)."""
    spec = service_get(service)
    with transaction.atomic():
        deleted, _ = Connection.objects.filter(user=user, service=spec.name).delete()
        if deleted:
            security_event_record(
                user=user,
                kind=SecurityKind.DISCONNECTED,
                origin=request_origin,
                actor=user,
                detail={"service": spec.name, "service_label": spec.label},
            )


def _expire_waiting(*, now: Any, pk: int | None = None) -> None:
    """Fail confirmations nobody gave in time and drop their parked provider tokens at
    once, not a day later with the row."""
    rows = OAuthState.objects.filter(
        status=OAuthState.Status.AWAITING_CONFIRMATION, expires_at__lte=now
    )
    if pk is not None:
        rows = rows.filter(pk=pk)
    rows.update(
        status=OAuthState.Status.FAILED,
        error_code="state_expired",
        error_message="This sign-in waited too long. Start again.",
        pending_tokens=None,
        pending_identity=None,
    )


def oauth_records_purge(*, now: Any = None) -> dict[str, int]:
    """Delete OAuth states a day after they expire and Kay sessions never linked to a user;
    wipe the provider tokens of expired confirmations now."""
    now = now or timezone.now()
    _expire_waiting(now=now)
    grace = now - timedelta(days=1)
    states, _ = OAuthState.objects.filter(expires_at__lt=grace).delete()
    sessions, _ = KaySession.objects.filter(user__isnull=True, last_used_at__lt=grace).delete()
    return {"oauth_states": states, "kay_sessions": sessions}
