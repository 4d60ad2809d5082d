"""Writes for connections: start OAuth, finish the callback, hand out CLI tokens once,
disconnect, and keep provider access tokens fresh."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import CliSession, User
from accounts.tokens import cli_session_issue_tokens, cli_session_start, token_hash
from connections.identity import CallbackError, resolve_user, store_profile
from connections.models import (
    AccessibleResource,
    Connection,
    KaySession,
    OAuthState,
)
from connections.providers import Identity, InvalidGrant, OAuthTokens, Resource, provider_module
from connections.registry import ServiceSpec, service_get
from core.errors import ApplicationError, ConnectionNeedsReauth, NotFound
from core.fields import decrypt_field

logger = logging.getLogger(__name__)

STATE_LIFETIME = timedelta(minutes=10)
TOKENS_COLLECTABLE_FOR = timedelta(minutes=10)
REFRESH_MARGIN = timedelta(minutes=5)
SESSION_PREFIX = "kaysession_"


@dataclass(frozen=True)
class ConnectStart:
    service: str
    session_id: str
    authorization_url: str
    state: str


# --- helpers ----------------------------------------------------------------------------


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


# --- connect ------------------------------------------------------------------------------


@transaction.atomic
def connection_start(
    *,
    service: str,
    session_id: str | None = None,
    user: User | None = None,
    origin: str = OAuthState.Origin.CLI,
) -> ConnectStart:
    """Begin OAuth for ``service``: a (new or given) Kay session and a single-use state."""
    spec = service_get(service)
    raw_session = session_id or ""
    if session_id:
        session = kay_session_find(session_id=session_id, user=user)
    elif origin == OAuthState.Origin.DASHBOARD and user is not None:
        # The dashboard never shows a session id; any of the user's sessions will do.
        session = KaySession.objects.filter(user=user).first() or KaySession.objects.create(
            key_hash=token_hash(SESSION_PREFIX + secrets.token_urlsafe(32)), user=user
        )
    else:
        raw_session = SESSION_PREFIX + secrets.token_urlsafe(32)
        session = KaySession.objects.create(key_hash=token_hash(raw_session))
    session.last_used_at = timezone.now()
    session.save(update_fields=["last_used_at"])

    state = secrets.token_urlsafe(32)
    now = timezone.now()
    OAuthState.objects.create(
        state_hash=token_hash(state),
        session=session,
        service=spec.name,
        origin=origin,
        created_at=now,
        expires_at=now + STATE_LIFETIME,
    )
    challenge = pkce_challenge(pkce_verifier(state)) if spec.pkce else None
    url = provider_module(spec.provider).authorize_url(
        scopes=spec.scopes, state=state, redirect_uri=redirect_uri(spec), code_challenge=challenge
    )
    return ConnectStart(spec.name, raw_session, url, state)


# --- callback -----------------------------------------------------------------------------


def _fail(state: OAuthState, code: str, message: str) -> CallbackError:
    OAuthState.objects.filter(pk=state.pk).update(
        status=OAuthState.Status.FAILED, error_code=code, error_message=message[:300]
    )
    return CallbackError(message, code=code)


def _claim_state(*, raw_state: str, service: str | None) -> OAuthState:
    """Mark the state used (committed at once, so it can never be replayed)."""
    with transaction.atomic():
        state = (
            OAuthState.objects.select_for_update()
            .select_related("session")
            .filter(state_hash=token_hash(raw_state or ""))
            .first()
        )
        if state is None:
            raise CallbackError(
                "This sign-in link is not valid. Start again from the CLI or the dashboard.",
                code="invalid_state",
            )
        if state.used_at is not None:
            raise CallbackError(
                "This sign-in link was already used. Start again.", code="state_reused"
            )
        state.used_at = timezone.now()
        state.save(update_fields=["used_at"])
    if state.expires_at <= timezone.now():
        raise _fail(state, "state_expired", "This sign-in link expired after 10 minutes.")
    if service and service != state.service:
        raise _fail(state, "wrong_service", "This sign-in link was made for another service.")
    return state


def _store_connection(
    user: User, spec: ServiceSpec, identity: Identity, tokens: OAuthTokens, sites: list[Resource]
) -> Connection:
    now = timezone.now()
    connection = Connection.objects.filter(user=user, service=spec.name).first() or Connection(
        user=user, service=spec.name, connected_at=now
    )
    connection.status = Connection.Status.ACTIVE
    connection.external_account_id = identity.account_id
    connection.access_token = tokens.access_token
    connection.refresh_token = tokens.refresh_token
    connection.expires_at = (
        now + timedelta(seconds=tokens.expires_in) if tokens.expires_in else None
    )
    connection.scopes = tokens.scopes
    connection.last_refreshed_at = now
    connection.last_error = ""
    connection.save()
    connection.resources.all().delete()
    AccessibleResource.objects.bulk_create(
        AccessibleResource(
            connection=connection,
            resource_id=site.id,
            name=site.name[:200],
            url=site.url[:500],
            scopes=site.scopes,
            avatar_url=site.avatar_url[:500],
        )
        for site in sites
    )
    return connection


def oauth_callback_complete(
    *, state: str, service: str | None, code: str | None, error: str | None, browser_user: Any
) -> OAuthState:
    """Finish an authorisation: exchange the code, store the connection, and on a Kay
    session's first connection link the user and open a CLI session."""
    found = _claim_state(raw_state=state, service=service)
    spec = service_get(found.service)
    if error:
        message = (
            f"You declined access to {spec.label}. Nothing was connected."
            if error == "access_denied"
            else f"{spec.label} did not authorise the connection ({error[:40]})."
        )
        raise _fail(found, error[:64], message)
    if not code:
        raise _fail(found, "missing_code", f"{spec.label} sent no authorisation code.")
    provider = provider_module(spec.provider)
    try:
        tokens = provider.exchange_code(
            code=code,
            redirect_uri=redirect_uri(spec),
            code_verifier=pkce_verifier(state) if spec.pkce else None,
        )
        identity = provider.fetch_identity(access_token=tokens.access_token)
        sites = provider.fetch_resources(access_token=tokens.access_token)
    except ApplicationError as exc:
        logger.warning("OAuth callback for %s failed: %s", spec.name, exc.code)
        raise _fail(
            found, exc.code, f"Could not finish connecting {spec.label}: {exc.message}"
        ) from None
    try:
        with transaction.atomic():
            session = KaySession.objects.select_for_update().get(pk=found.session_id)
            first = session.user is None
            user = resolve_user(identity=identity, session=session, browser_user=browser_user)
            store_profile(user, identity)
            _store_connection(user, spec, identity, tokens, sites)
            if first:
                session.user = user
                session.save(update_fields=["user"])
                found.cli_session = cli_session_start(
                    user=user, origin=CliSession.Origin.CONNECTION, account_id=identity.account_id
                )
            found.user = user
            found.account_id = identity.account_id
            found.status = OAuthState.Status.COMPLETED
            found.completed_at = timezone.now()
            found.save(
                update_fields=["user", "account_id", "status", "completed_at", "cli_session"]
            )
    except CallbackError as exc:
        raise _fail(found, exc.code, exc.message) from None
    return found


# --- CLI polling, listing, disconnect ------------------------------------------------------


def auth_status_collect(*, state: str, user: Any = None) -> dict[str, Any]:
    """``GET /auth/status/<state>``: pending, then the tokens exactly once."""
    found = OAuthState.objects.filter(state_hash=token_hash(state or "")).first()
    if found is None or (
        user is not None
        and getattr(user, "is_authenticated", False)
        and found.user_id not in (None, user.pk)
    ):
        raise NotFound("No such authorisation.")
    if found.status == OAuthState.Status.PENDING:
        if found.expires_at <= timezone.now():
            raise ApplicationError(
                "The authorisation expired. Start again.", code="expired", status=410
            )
        return {"status": "pending", "message": "Authorization not yet completed"}
    if found.status == OAuthState.Status.FAILED:
        raise ApplicationError(
            found.error_message or "The authorisation failed.", code=found.error_code or "failed"
        )
    if found.cli_session_id is None:
        # Not the session's first connection: the CLI already holds tokens.
        return {
            "status": "completed",
            "account_id": found.account_id,
            "message": f"Connected {found.service}. Keep using your current session token.",
        }
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
        pair = cli_session_issue_tokens(session=session)
    return {
        "status": "completed",
        "account_id": found.account_id,
        "token": pair.token,
        "refresh_token": pair.refresh_token,
        "message": "Authorization completed successfully",
    }


def connection_disconnect(*, user: User, service: str) -> None:
    """Forget one service's tokens and sites for ``user`` (idempotent)."""
    spec = service_get(service)
    Connection.objects.filter(user=user, service=spec.name).delete()


# --- provider access tokens ----------------------------------------------------------------


def connection_refresh(*, connection_id: int, within: timedelta = REFRESH_MARGIN) -> Connection:
    """Refresh a connection's access token if it expires within ``within``.

    The row is locked for the whole exchange, so two workers never spend the same
    rotating refresh token: the second one waits, then finds a fresh token and returns.
    """
    needs_reauth = False
    with transaction.atomic():
        connection = Connection.objects.select_for_update().get(pk=connection_id)
        now = timezone.now()
        if connection.status == Connection.Status.NEEDS_REAUTH:
            needs_reauth = True
        elif connection.expires_at is None or connection.expires_at > now + within:
            return connection
        else:
            spec = service_get(connection.service)
            secret = decrypt_field(connection, "refresh_token")
            try:
                if not secret:
                    raise InvalidGrant("No refresh token stored.")
                tokens = provider_module(spec.provider).refresh(refresh_token=secret)
            except InvalidGrant:
                connection.status = Connection.Status.NEEDS_REAUTH
                connection.last_error = f"{spec.label} refused the refresh token."
                connection.save(update_fields=["status", "last_error"])
                needs_reauth = True
            else:
                connection.access_token = tokens.access_token
                if tokens.refresh_token:
                    connection.refresh_token = tokens.refresh_token
                connection.expires_at = (
                    now + timedelta(seconds=tokens.expires_in) if tokens.expires_in else None
                )
                connection.last_refreshed_at = now
                connection.last_error = ""
                connection.save()
    if needs_reauth:
        raise ConnectionNeedsReauth(
            f"The {connection.service} connection needs re-authorisation: connect it again."
        )
    return connection


def connection_access_token(*, user: User, service: str) -> str:
    """A usable access token for ``user``'s connection (what the assistant calls)."""
    spec = service_get(service)
    connection = Connection.objects.filter(user=user, service=spec.name).first()
    if connection is None:
        raise NotFound(f"{spec.label} is not connected.")
    if connection.status == Connection.Status.NEEDS_REAUTH:
        raise ConnectionNeedsReauth(f"{spec.label} needs re-authorisation: connect it again.")
    if (
        connection.expires_at is not None
        and connection.expires_at <= timezone.now() + REFRESH_MARGIN
    ):
        connection = connection_refresh(connection_id=connection.pk)
    token = decrypt_field(connection, "access_token")
    if not token:
        raise ConnectionNeedsReauth(f"{spec.label} has no access token: connect it again.")
    return token


def oauth_records_purge(*, now: Any = None) -> dict[str, int]:
    """Delete OAuth states a day after they expire and Kay sessions never linked to a user."""
    now = now or timezone.now()
    grace = now - timedelta(days=1)
    states, _ = OAuthState.objects.filter(expires_at__lt=grace).delete()
    sessions, _ = KaySession.objects.filter(user__isnull=True, last_used_at__lt=grace).delete()
    return {"oauth_states": states, "kay_sessions": sessions}
