"""Writes for connections: start OAuth, finish the callback, hand out CLI tokens once,
disconnect, and keep provider access tokens fresh."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.devices import USER_CODE_ALPHABET, USER_CODE_LENGTH, user_code_format
from accounts.models import AtlassianProfile, CliSession, SecurityEvent, User
from accounts.services import NOWHERE, RequestOrigin, security_event_record
from accounts.tokens import TokenPair, cli_session_issue_tokens, cli_session_start
from connections.identity import (
    CallbackError,
    LinkTarget,
    link_target,
    store_profile,
    user_create_from_identity,
    user_for_session,
)
from connections.models import (
    AccessibleResource,
    Connection,
    KaySession,
    OAuthState,
)
from connections.providers import Identity, InvalidGrant, OAuthTokens, Resource, provider_module
from connections.registry import ServiceSpec, service_get
from core.crypto import DecryptionError
from core.errors import ApplicationError, ConnectionNeedsReauth, NotFound
from core.fields import decrypt_field
from core.hashing import token_hash

logger = logging.getLogger(__name__)

STATE_LIFETIME = timedelta(minutes=10)
TOKENS_COLLECTABLE_FOR = timedelta(minutes=10)
REFRESH_MARGIN = timedelta(minutes=5)
SESSION_PREFIX = "kaysession_"
# The error codes of an authorization response (RFC 6749 §4.1.2.1).
OAUTH_ERROR_CODES = frozenset(
    {
        "invalid_request",
        "unauthorized_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
    }
)
SecurityKind = SecurityEvent.Kind


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


@dataclass(frozen=True)
class CallbackOutcome:
    """A finished callback: ``state`` completed, or ``confirm_nonce`` set when a CLI's
    first connection now waits for the browser's confirmation (keep the nonce in the
    browser's session)."""

    state: OAuthState
    confirm_nonce: str = ""


@dataclass(frozen=True)
class Exchanged:
    """What the provider gave for an authorisation code: whose account, its tokens, and the
    sites they reach."""

    identity: Identity
    tokens: OAuthTokens
    sites: list[Resource]


@dataclass(frozen=True)
class LinkPreview:
    """What the confirmation page shows before a CLI is signed in."""

    state: OAuthState
    spec: ServiceSpec
    target: LinkTarget
    identity: Identity
    first: bool  # the session's first connection: it signs the CLI in


@dataclass(frozen=True)
class AuthStatus:
    """Where a CLI's authorisation stands: still pending, or completed. ``tokens`` only
    in the one poll that collects them; a service added to a session that already has
    tokens completes without any."""

    completed: bool
    service: str = ""
    account_id: str = ""
    tokens: TokenPair | None = None


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


# --- callback -----------------------------------------------------------------------------


def _fail(state: OAuthState, code: str, message: str) -> CallbackError:
    """Mark the attempt failed (the CLI's poll then says why) and drop parked tokens."""
    OAuthState.objects.filter(pk=state.pk).update(
        status=OAuthState.Status.FAILED,
        error_code=code,
        error_message=message[:300],
        pending_tokens=None,
        pending_identity=None,
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


def _store_connection(user: User, spec: ServiceSpec, got: Exchanged) -> Connection:
    now = timezone.now()
    tokens = got.tokens
    connection = Connection.objects.filter(user=user, service=spec.name).first() or Connection(
        user=user, service=spec.name, connected_at=now
    )
    connection.status = Connection.Status.ACTIVE
    connection.external_account_id = got.identity.account_id
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
        for site in got.sites
    )
    return connection


def _browser_holds(state: OAuthState, nonces: Iterable[str]) -> bool:
    return bool(state.browser_hash) and any(
        hmac.compare_digest(token_hash(nonce), state.browser_hash) for nonce in nonces
    )


def _exchange(found: OAuthState, spec: ServiceSpec, raw_state: str, code: str) -> Exchanged:
    provider = provider_module(spec.provider)
    try:
        tokens = provider.exchange_code(
            code=code,
            redirect_uri=redirect_uri(spec),
            code_verifier=pkce_verifier(raw_state) if spec.pkce else None,
        )
        identity = provider.fetch_identity(access_token=tokens.access_token)
        sites = provider.fetch_resources(access_token=tokens.access_token)
    except ApplicationError as exc:
        logger.warning("OAuth callback for %s failed: %s", spec.name, exc.code)
        raise _fail(
            found, exc.code, f"Could not finish connecting {spec.label}: {exc.message}"
        ) from None
    return Exchanged(identity=identity, tokens=tokens, sites=sites)


def _complete(
    found: OAuthState,
    user: User,
    spec: ServiceSpec,
    got: Exchanged,
    *,
    first: bool,
    request_origin: RequestOrigin,
) -> OAuthState:
    """Store the connection; on a session's first connection also sign the CLI in."""
    session = KaySession.objects.select_for_update().get(pk=found.session_id)
    identity = got.identity
    store_profile(user, identity)
    _store_connection(user, spec, got)
    security_event_record(
        user=user,
        kind=SecurityKind.CONNECTED,
        origin=request_origin,
        actor=user,
        detail={
            "service": spec.name,
            "service_label": spec.label,
            "via": found.origin,
            "account_id": identity.account_id,
        },
    )
    if first:
        session.user = user
        session.save(update_fields=["user"])
        found.cli_session = cli_session_start(
            user=user,
            origin=CliSession.Origin.CONNECTION,
            account_id=identity.account_id,
            client_name=found.client_name[:100],
            request_origin=RequestOrigin(ip=found.client_ip, client=found.client_name),
        )
    found.user = user
    found.account_id = identity.account_id
    found.status = OAuthState.Status.COMPLETED
    found.completed_at = timezone.now()
    found.pending_tokens = None
    found.pending_identity = None
    found.save(
        update_fields=[
            "user",
            "account_id",
            "status",
            "completed_at",
            "cli_session",
            "pending_tokens",
            "pending_identity",
        ]
    )
    return found


def oauth_callback_complete(
    *,
    state: str,
    service: str | None,
    code: str | None,
    error: str | None,
    browser_user: Any,
    browser_nonces: Iterable[str] = (),
    request_origin: RequestOrigin = NOWHERE,
) -> CallbackOutcome:
    """Finish an authorisation at the provider's redirect.

    A dashboard start completes only in the browser session and for the Kay user that
    began it. A CLI's first connection is exchanged and then waits for the person in
    the browser to confirm (:func:`oauth_link_confirm`); later connections of a signed-in
    session complete at once with the user's own Atlassian account, and wait for a
    browser signed in as that user with any other.
    """
    found = _claim_state(raw_state=state, service=service)
    spec = service_get(found.service)
    if found.origin == OAuthState.Origin.DASHBOARD and not (
        getattr(browser_user, "is_authenticated", False)
        and browser_user.pk == found.user_id
        and _browser_holds(found, browser_nonces)
    ):
        raise _fail(
            found,
            "browser_mismatch",
            f"This {spec.label} connection was started in another browser or by another "
            "Kay account, so nothing was connected. If you want to connect, start again "
            "from your own dashboard.",
        )
    if error:
        # Anyone holding a state can write this URL: only RFC 6749's codes are repeated.
        code = error if error in OAUTH_ERROR_CODES else "provider_error"
        message = (
            f"You declined access to {spec.label}. Nothing was connected."
            if code == "access_denied"
            else f"{spec.label} did not authorise the connection ({code})."
        )
        raise _fail(found, code, message)
    if not code:
        raise _fail(found, "missing_code", f"{spec.label} sent no authorisation code.")
    got = _exchange(found, spec, state, code)
    try:
        with transaction.atomic():
            session = KaySession.objects.select_for_update().get(pk=found.session_id)
            if session.user is None:
                return _await_confirmation(found, got)
            user = user_for_session(identity=got.identity, session=session)
            if found.origin == OAuthState.Origin.CLI and not _is_own_identity(user, got.identity):
                # A signed-in CLI's link can be sent to someone else too: another
                # Atlassian account joins this Kay account only once its owner confirms.
                return _await_confirmation(found, got)
            return CallbackOutcome(
                _complete(found, user, spec, got, first=False, request_origin=request_origin)
            )
    except CallbackError as exc:
        raise _fail(found, exc.code, exc.message) from None


def _is_own_identity(user: User, identity: Identity) -> bool:
    return AtlassianProfile.objects.filter(user=user, account_id=identity.account_id).exists()


def _link_target(session: KaySession, identity: Identity, browser_user: Any) -> LinkTarget:
    """Whom a parked connection goes to: a signed-in session's own user, else (a first
    connection) :func:`~connections.identity.link_target`'s account."""
    if session.user is not None:
        user = user_for_session(identity=identity, session=session)
        return LinkTarget(user, user.email)
    return link_target(identity=identity, browser_user=browser_user)


def _await_confirmation(found: OAuthState, got: Exchanged) -> CallbackOutcome:
    """Park a CLI's connection until the browser that brought it back confirms."""
    nonce = secrets.token_urlsafe(32)
    found.status = OAuthState.Status.AWAITING_CONFIRMATION
    found.browser_hash = token_hash(nonce)
    # Ten more minutes from here: the person may first have to sign in (by emailed code).
    found.expires_at = timezone.now() + STATE_LIFETIME
    found.pending_tokens = json.dumps(asdict(got.tokens))
    found.pending_identity = {
        "identity": asdict(got.identity),
        "sites": [asdict(site) for site in got.sites],
    }
    found.save(
        update_fields=["status", "browser_hash", "expires_at", "pending_tokens", "pending_identity"]
    )
    return CallbackOutcome(found, confirm_nonce=nonce)


def _awaiting(*, link_id: int, browser_nonces: Iterable[str], lock: bool = False) -> OAuthState:
    rows = OAuthState.objects.select_related("session")
    if lock:
        rows = rows.select_for_update()
    found = rows.filter(
        pk=link_id, origin=OAuthState.Origin.CLI, status=OAuthState.Status.AWAITING_CONFIRMATION
    ).first()
    if found is None or not _browser_holds(found, browser_nonces):
        raise CallbackError(
            "There is no sign-in waiting for this browser. Run `kay connect` again.",
            code="no_pending_link",
        )
    if found.expires_at <= timezone.now():
        raise _fail(found, "state_expired", "This sign-in waited too long. Start again.")
    return found


def _pending(found: OAuthState) -> Exchanged:
    data = found.pending_identity or {}
    return Exchanged(
        identity=Identity(**data["identity"]),
        tokens=OAuthTokens(**json.loads(decrypt_field(found, "pending_tokens") or "{}")),
        sites=[Resource(**site) for site in data.get("sites", [])],
    )


def oauth_link_preview(
    *, link_id: int, browser_nonces: Iterable[str], browser_user: Any
) -> LinkPreview:
    """What a CLI's connection waiting in this browser would do, for the page."""
    found = _awaiting(link_id=link_id, browser_nonces=browser_nonces)
    data = found.pending_identity or {}
    identity = Identity(**data["identity"])
    try:
        target = _link_target(found.session, identity, browser_user)
    except CallbackError as exc:
        raise _fail(found, exc.code, exc.message) from None
    return LinkPreview(
        found, service_get(found.service), target, identity, first=found.session.user_id is None
    )


def oauth_link_confirm(
    *,
    link_id: int,
    browser_nonces: Iterable[str],
    browser_user: Any,
    approve: bool,
    request_origin: RequestOrigin = NOWHERE,
) -> OAuthState:
    """The person in the browser approves (or refuses) signing the CLI in.

    An existing account must be the one signed in to this browser; a new one is created
    only now. Nothing is linked before this point.
    """
    try:
        with transaction.atomic():
            found = _awaiting(link_id=link_id, browser_nonces=browser_nonces, lock=True)
            spec = service_get(found.service)
            if not approve:
                raise CallbackError(
                    f"You cancelled. No CLI was signed in and {spec.label} was not connected.",
                    code="access_denied",
                )
            got = _pending(found)
            session = KaySession.objects.select_for_update().get(pk=found.session_id)
            target = _link_target(session, got.identity, browser_user)
            if not target.allows(browser_user):
                raise CallbackError(
                    f"Sign in to Kay as {target.email} to continue.", code="wrong_account"
                )
            user = target.user or user_create_from_identity(
                identity=got.identity, email=target.email
            )
            return _complete(
                found,
                user,
                spec,
                got,
                # A session signed in meanwhile (another service confirmed first) only
                # gains a connection: its CLI already has its tokens.
                first=session.user is None,
                request_origin=request_origin,
            )
    except CallbackError as exc:
        # Outside the transaction, so the failure is recorded although it rolled back.
        # A browser that holds no nonce, or the wrong account, changes nothing.
        if exc.code not in ("no_pending_link", "wrong_account"):
            OAuthState.objects.filter(
                pk=link_id, status=OAuthState.Status.AWAITING_CONFIRMATION
            ).update(
                status=OAuthState.Status.FAILED,
                error_code=exc.code,
                error_message=exc.message[:300],
                pending_tokens=None,
                pending_identity=None,
            )
        raise


# --- CLI polling, listing, disconnect ------------------------------------------------------


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


# --- provider access tokens ----------------------------------------------------------------


def connection_refresh(*, connection_id: int, within: timedelta = REFRESH_MARGIN) -> Connection:
    """Refresh a connection's access token if it expires within ``within``.

    The row is locked for the whole exchange, so two workers never spend the same
    rotating refresh token: the second one waits, then finds a fresh token and returns.
    """
    needs_reauth = unreadable = False
    with transaction.atomic():
        connection = Connection.objects.select_for_update().get(pk=connection_id)
        now = timezone.now()
        if connection.status == Connection.Status.NEEDS_REAUTH:
            needs_reauth = True
        elif connection.expires_at is None or connection.expires_at > now + within:
            return connection
        else:
            spec = service_get(connection.service)
            try:
                secret = decrypt_field(connection, "refresh_token")
                if not secret:
                    raise InvalidGrant("No refresh token stored.")
                tokens = provider_module(spec.provider).refresh(refresh_token=secret)
            except DecryptionError:
                unreadable = True
            except InvalidGrant:
                connection.status = Connection.Status.NEEDS_REAUTH
                connection.last_error = f"{spec.label} refused the refresh token."
                connection.save(update_fields=["status", "last_error"])
                security_event_record(
                    user=connection.user_id,
                    kind=SecurityKind.NEEDS_REAUTH,
                    detail={"service": spec.name, "service_label": spec.label},
                )
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
    if unreadable:
        raise _unreadable(connection)
    if needs_reauth:
        raise ConnectionNeedsReauth(
            f"The {connection.service} connection needs re-authorisation: connect it again."
        )
    return connection


class ConnectionUnreadable(ApplicationError):
    """A stored provider token no key in ENCRYPTION_KEYS opens (as the vault's keys)."""

    status = 409
    code = "connection_unreadable"


def _unreadable(connection: Connection) -> ConnectionUnreadable:
    """Audit an undecryptable token (call outside any transaction that will roll back)."""
    logger.error("connection %s token cannot be decrypted with ENCRYPTION_KEYS", connection.pk)
    label = service_get(connection.service).label
    security_event_record(
        user=connection.user_id,
        kind=SecurityKind.CONNECTION_UNREADABLE,
        detail={"service": connection.service, "service_label": label},
    )
    return ConnectionUnreadable(
        f"The stored {label} token cannot be decrypted: connect {label} again, or ask "
        "the operator to check ENCRYPTION_KEYS."
    )


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
    try:
        token = decrypt_field(connection, "access_token")
    except DecryptionError:
        raise _unreadable(connection) from None
    if not token:
        raise ConnectionNeedsReauth(f"{spec.label} has no access token: connect it again.")
    return token


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
