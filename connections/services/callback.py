"""Finishing OAuth at the provider's redirect, and the confirmation a CLI's sign-in waits
for: only the browser that came back, signed in as the right account, links anything."""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import AtlassianProfile, CliSession, User
from accounts.services import NOWHERE, RequestOrigin, security_event_record
from accounts.tokens import cli_session_start
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
from connections.providers import Identity, OAuthTokens, Resource, provider_module
from connections.registry import ServiceSpec, service_get
from connections.services.common import STATE_LIFETIME, SecurityKind, pkce_verifier, redirect_uri
from core.errors import ApplicationError
from core.fields import decrypt_field
from core.hashing import token_hash

logger = logging.getLogger(__name__)

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
