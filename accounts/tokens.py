"""CLI session tokens, refresh-token families and personal API tokens (issue 4).

* A **CLI session token** is a short JWT (``CLI_SESSION_EXPIRES_IN``) with ``sub`` (our
  user id), ``account_id`` (the Atlassian account, or ``""``) and ``sid`` (the
  :class:`~accounts.models.CliSession`, i.e. the refresh-token family).
* A **refresh token** is 32 random bytes shown once and stored as a SHA-256 digest. It is
  rotated on every use; presenting a spent one revokes the whole family (RFC 9700
  §4.14.2), so a stolen token stops working for the thief *and* the victim.
* A **personal API token** (seed 000) is a JWT with ``sub``, ``iat``, ``exp``,
  ``kayUserId`` and ``version``. Only the hash of its ``jti`` is stored, so it can be
  listed and revoked. Raising ``API_TOKEN_VERSION`` invalidates every older token.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import Token

from accounts.models import ApiToken, CliSession, RefreshToken, User
from accounts.services import NOWHERE, Kind, RequestOrigin, security_event_record
from core.errors import ApplicationError, LimitReached
from core.hashing import token_hash
from core.ids import parse_id
from core.prepared import PreparedQuery, first_row

# Revocation is cached this long, so a revoked family stops working within it everywhere.
SESSION_STATE_CACHE_SECONDS = 30
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenRejected(ApplicationError):
    """401 for a token that is ours but unusable; the client must sign in again."""

    status = 401
    code = "invalid_token"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(
            message,
            code=code,
            headers={"WWW-Authenticate": f'Bearer realm="kay", error="{code or self.code}"'},
        )


class CliSessionToken(Token):
    token_type = "cli_session"
    lifetime = timedelta(minutes=30)  # replaced per token from settings in _session_jwt


class PersonalApiToken(Token):
    token_type = "api"
    lifetime = timedelta(days=30)  # replaced per token from settings in api_token_create


@dataclass(frozen=True)
class TokenPair:
    token: str
    refresh_token: str
    expires_in: int
    session: CliSession


# --- CLI sessions -----------------------------------------------------------------------


def _session_jwt(session: CliSession) -> str:
    jwt = CliSessionToken()
    jwt.set_exp(lifetime=timedelta(seconds=settings.CLI_SESSION_EXPIRES_IN))
    jwt["sub"] = str(session.user_id)
    jwt["account_id"] = session.account_id
    jwt["sid"] = str(session.public_id)
    return str(jwt)


def _new_refresh_token(session: CliSession) -> str:
    raw = secrets.token_hex(32)
    now = timezone.now()
    expires = min(
        now + timedelta(seconds=settings.CLI_REFRESH_TOKEN_EXPIRES_IN), session.expires_at
    )
    RefreshToken.objects.create(
        session=session, token_hash=token_hash(raw), created_at=now, expires_at=expires
    )
    return raw


def cli_session_start(
    *,
    user: User,
    origin: str,
    account_id: str = "",
    client_name: str = "",
    request_origin: RequestOrigin = NOWHERE,
) -> CliSession:
    """Open a refresh-token family for ``user`` (tokens are issued separately, once)."""
    now = timezone.now()
    security_event_record(
        user=user,
        kind=Kind.CLI_SIGNED_IN,
        origin=request_origin,
        actor=user,
        detail={"via": origin, "client": client_name[:100]},
    )
    return CliSession.objects.create(
        public_id=uuid.uuid4(),
        user=user,
        account_id=account_id,
        origin=origin,
        client_name=client_name[:100],
        created_at=now,
        expires_at=now + timedelta(seconds=settings.CLI_SESSION_ABSOLUTE_LIFETIME),
    )


@transaction.atomic
def cli_session_issue_tokens(*, session: CliSession) -> TokenPair:
    """The first token pair of a family (after a connection or a device approval)."""
    if not session.is_active:
        raise TokenRejected("This sign-in has ended. Sign in again.", code="session_revoked")
    return TokenPair(
        token=_session_jwt(session),
        refresh_token=_new_refresh_token(session),
        expires_in=settings.CLI_SESSION_EXPIRES_IN,
        session=session,
    )


def cli_session_refresh(*, refresh_token: str, origin: RequestOrigin = NOWHERE) -> TokenPair:
    """Rotate a refresh token; reuse of a rotated one revokes its whole family."""
    with transaction.atomic():
        found = (
            RefreshToken.objects.select_for_update()
            .select_related("session")
            .filter(token_hash=token_hash(refresh_token))
            .first()
        )
        if found is None:
            raise TokenRejected("Unknown refresh token. Sign in again.")
        session = CliSession.objects.select_for_update().get(pk=found.session_id)
        now = timezone.now()
        if session.revoked_at is not None:
            raise TokenRejected("This sign-in was ended. Sign in again.", code="session_revoked")
        if found.rotated_at is not None:
            reused = True
        else:
            reused = False
            if found.expires_at <= now or session.expires_at <= now:
                raise TokenRejected("The refresh token has expired. Sign in again.", code="expired")
            found.rotated_at = now
            found.save(update_fields=["rotated_at"])
            session.last_refreshed_at = now
            session.save(update_fields=["last_refreshed_at"])
            pair = TokenPair(
                token=_session_jwt(session),
                refresh_token=_new_refresh_token(session),
                expires_in=settings.CLI_SESSION_EXPIRES_IN,
                session=session,
            )
    if reused:
        # Outside the block above so the revocation commits even though we answer 401.
        cli_session_revoke(session=session, reason="refresh_token_reuse", origin=origin)
        raise TokenRejected(
            "This refresh token was already used, so the sign-in was ended for safety. "
            "Sign in again.",
            code="refresh_token_reused",
        )
    return pair


def _state_key(public_id: Any) -> str:
    return f"accounts:cli-session:{public_id}"


def cli_session_revoke(
    *,
    session: CliSession,
    reason: str,
    actor: User | None = None,
    origin: RequestOrigin = NOWHERE,
) -> None:
    """End a family: its refresh tokens, session JWTs and the personal API tokens it
    minted stop working everywhere."""
    now = timezone.now()
    with transaction.atomic():
        ended = CliSession.objects.filter(pk=session.pk, revoked_at__isnull=True).update(
            revoked_at=now, revoked_reason=reason
        )
        minted = ApiToken.objects.filter(cli_session=session, revoked_at__isnull=True).update(
            revoked_at=now
        )
        if ended:
            security_event_record(
                user=session.user_id,
                kind=Kind.REFRESH_REUSE
                if reason == "refresh_token_reuse"
                else Kind.CLI_SESSION_REVOKED,
                origin=origin,
                actor=actor,
                detail={
                    "reason": reason,
                    "client": session.client_name,
                    "api_tokens_revoked": minted,
                },
            )
    cache.set(_state_key(session.public_id), "revoked", SESSION_STATE_CACHE_SECONDS)


def cli_session_is_usable(*, public_id: str, user_id: int) -> bool:
    """Whether a JWT's ``sid`` still names an active family of that user (cached briefly)."""
    key = _state_key(public_id)
    state = cache.get(key)
    if state is None:
        try:
            uuid.UUID(public_id)
        except ValueError:
            return False
        session = CliSession.objects.filter(public_id=public_id, user_id=user_id).first()
        state = "active" if session is not None and session.is_active else "revoked"
        cache.set(key, state, SESSION_STATE_CACHE_SECONDS)
    return state == "active"


# --- Personal API tokens (seed 000) --------------------------------------------------------


@transaction.atomic
def api_token_create(
    *,
    user: User,
    name: str,
    cli_session: CliSession | None = None,
    origin: RequestOrigin = NOWHERE,
) -> tuple[ApiToken, str]:
    """A new personal API token; the JWT is returned once and never stored.

    A token minted with a CLI session's JWT remembers it, ends no later than that family
    and is revoked with it. An
    account holds at most ``MAX_API_TOKENS_PER_USER`` usable tokens (409 beyond).
    """
    now = timezone.now()
    expires_at = now + timedelta(seconds=settings.API_TOKEN_EXPIRES_IN)
    if cli_session is not None:
        # Locked, so a revocation running now either commits first (refused here) or
        # waits and then revokes this token too; and the token ends with the sign-in.
        cli_session = CliSession.objects.select_for_update().get(pk=cli_session.pk)
        if not cli_session.is_active:
            raise TokenRejected("This sign-in has ended. Sign in again.", code="session_revoked")
        expires_at = min(expires_at, cli_session.expires_at)
    jwt = PersonalApiToken()
    jwt.set_exp(from_time=now, lifetime=expires_at - now)
    jwt["sub"] = str(user.pk)
    jwt["kayUserId"] = f"kay/{user.pk}"
    jwt["version"] = settings.API_TOKEN_VERSION
    # Counted under a lock on the user's row: two creates at once cannot both take the
    # last place. Revoked, expired and outdated-version tokens no longer count.
    User.objects.select_for_update(no_key=True).only("pk").get(pk=user.pk)
    limit = settings.MAX_API_TOKENS_PER_USER
    usable = ApiToken.objects.filter(
        user=user,
        revoked_at__isnull=True,
        expires_at__gt=now,
        version=settings.API_TOKEN_VERSION,
    )
    if usable.count() >= limit:
        raise LimitReached(limit=limit, noun="API token", remedy="Revoke one first.")
    row = ApiToken.objects.create(
        user=user,
        name=name.strip()[:100] or "API token",
        jti_hash=token_hash(str(jwt["jti"])),
        version=settings.API_TOKEN_VERSION,
        created_at=now,
        expires_at=expires_at,
        cli_session=cli_session,
    )
    security_event_record(
        user=user,
        kind=Kind.API_TOKEN_CREATED,
        origin=origin,
        actor=user,
        detail={"token_name": row.name, "via_cli_session": cli_session is not None},
    )
    return row, str(jwt)


def api_token_revoke(
    *, token: ApiToken, actor: User | None = None, origin: RequestOrigin = NOWHERE
) -> None:
    """Revoke one personal token (idempotent)."""
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if revoked:
        security_event_record(
            user=token.user_id,
            kind=Kind.API_TOKEN_REVOKED,
            origin=origin,
            actor=actor,
            detail={"token_name": token.name},
        )


# Every API request reads it: compiled once (core.prepared).
_TOKEN_ROW: PreparedQuery[ApiToken] = PreparedQuery(
    lambda jti_hash, user_id: first_row(
        ApiToken.objects.select_related("user", "cli_session").filter(
            jti_hash=jti_hash, user_id=user_id
        )
    )
)


def api_token_authenticate(payload: dict[str, Any]) -> tuple[User, ApiToken]:
    """The user and row behind a verified personal-token payload, or :class:`TokenRejected`."""
    if payload.get("version") != settings.API_TOKEN_VERSION:
        raise TokenRejected(
            "This API token was issued for an older token version and no longer works. "
            "Sign in again and create a new token.",
            code="token_version_outdated",
        )
    user_id = parse_id(str(payload.get("sub", "")))
    row = (
        _TOKEN_ROW.first(jti_hash=token_hash(str(payload.get("jti", ""))), user_id=user_id)
        if user_id is not None
        else None
    )
    if (
        row is None
        or row.revoked_at is not None
        or (row.cli_session is not None and row.cli_session.revoked_at is not None)
    ):
        raise TokenRejected("This API token was revoked.", code="token_revoked")
    if not row.user.is_active:
        raise TokenRejected("This account is disabled.", code="account_disabled")
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
    return row.user, row


def decode_our_jwt(raw: str, token_class: type[Token]) -> Token:
    """Verify signature, expiry, ``jti`` and type; :class:`TokenRejected` otherwise."""
    try:
        return token_class(raw)  # type: ignore[arg-type]
    except TokenError as exc:
        expired = "expired" in str(exc).lower()
        raise TokenRejected(
            "The token has expired. Refresh it or sign in again."
            if expired
            else "The token is not valid. Sign in again.",
            code="token_expired" if expired else "invalid_token",
        ) from None


# --- Housekeeping ------------------------------------------------------------------------


def auth_records_purge(*, now: Any = None) -> dict[str, int]:
    """Delete ended CLI sessions and expired or revoked personal tokens, a day after they
    end (so a create-and-revoke loop cannot grow the table without bound)."""
    now = now or timezone.now()
    grace = now - timedelta(days=1)
    ended = CliSession.objects.filter(expires_at__lt=grace) | CliSession.objects.filter(
        revoked_at__lt=grace
    )
    sessions, _ = ended.delete()
    gone = ApiToken.objects.filter(expires_at__lt=grace) | ApiToken.objects.filter(
        revoked_at__lt=grace
    )
    tokens, _ = gone.delete()
    return {"cli_sessions": sessions, "api_tokens": tokens}
