"""Connection pages: the dashboard's Connections page and the OAuth callback page."""

from __future__ import annotations

import logging
import secrets
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.devices import user_code_format
from accounts.services import RequestOrigin
from connections import selectors, services
from connections.models import OAuthState
from connections.registry import service_get
from core.errors import ApplicationError, NotConfigured

logger = logging.getLogger(__name__)


@login_required
@require_GET
def connection_list(request: HttpRequest) -> HttpResponse:
    statuses = selectors.service_statuses_for(user=request.user)
    return render(request, "connections/list.html", {"statuses": statuses})


# A nonce per OAuth attempt, kept in a signed, HttpOnly cookie of the browser: the
# callback and the confirmation page act only for the browser that holds it (RFC 9700
# §4.7.1). A cookie rather than the Django session, because signing out and in as the
# right account (which flushes the session) must not lose it.
NONCE_COOKIE = "kay_oauth"
NONCE_SALT = "connections.oauth-browser"
NONCES_KEPT = 5


def _nonces(request: HttpRequest) -> list[str]:
    raw = request.get_signed_cookie(NONCE_COOKIE, default="", salt=NONCE_SALT)
    return [nonce for nonce in (raw or "").split(",") if nonce]


def _nonce_keep(request: HttpRequest, response: HttpResponse, nonce: str) -> HttpResponse:
    kept = [nonce, *_nonces(request)][:NONCES_KEPT]
    response.set_signed_cookie(
        NONCE_COOKIE,
        ",".join(kept),
        salt=NONCE_SALT,
        max_age=int(services.STATE_LIFETIME.total_seconds()) * 2,
        httponly=True,
        secure=request.is_secure(),
        samesite="Lax",  # sent on the provider's top-level redirect back to us
    )
    return response


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    # Not "no-referrer": Chromium then sends "Origin: null" with the form's POST, which
    # Django's CSRF check rightly refuses. Same-origin keeps the URL at home.
    response["Referrer-Policy"] = "same-origin"
    return response


def _result_page(request: HttpRequest, *, ok: bool, title: str, message: str, **extra: Any):
    context = {"ok": ok, "title": title, "message": message, **extra}
    return _no_store(
        render(request, "connections/callback.html", context, status=200 if ok else 400)
    )


@login_required
@require_POST
def connection_start(request: HttpRequest, service: str) -> HttpResponse:
    """Connect from the browser: straight to the provider's consent screen."""
    nonce = secrets.token_urlsafe(32)
    try:
        started = services.connection_start(
            service=service,
            user=request.user,  # type: ignore[arg-type]
            origin=OAuthState.Origin.DASHBOARD,
            browser_nonce=nonce,
            request_origin=RequestOrigin.of(request),
        )
    except NotConfigured as exc:
        logger.warning("%s", exc.operator_hint)
        messages.error(request, exc.message)
        if request.user.is_staff:
            messages.info(request, f"Operator: {exc.operator_hint}")
        return redirect("connections:list")
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("connections:list")
    return _nonce_keep(request, redirect(started.authorization_url), nonce)


@login_required
@require_POST
def connection_remove(request: HttpRequest, service: str) -> HttpResponse:
    try:
        spec = service_get(service)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("connections:list")
    services.connection_disconnect(
        user=request.user,  # type: ignore[arg-type]
        service=spec.name,
        request_origin=RequestOrigin.of(request),
    )
    messages.success(request, f"Disconnected {spec.label}. Its tokens were deleted.")
    return redirect("connections:list")


@require_GET
def oauth_callback(request: HttpRequest) -> HttpResponse:
    """Where Atlassian and Bitbucket send the browser back (seed 003 step 3).

    A CLI's first connection is not linked here: the browser is sent to a confirmation
    page that shows the code the CLI printed, and only a POST from there signs it in.
    """
    params = request.GET
    raw_state = params.get("state", "")
    try:
        outcome = services.oauth_callback_complete(
            state=raw_state,
            service=params.get("service") or None,
            code=params.get("code") or None,
            error=params.get("error") or None,
            browser_user=request.user,
            browser_nonces=_nonces(request),
            request_origin=RequestOrigin.of(request),
        )
    except ApplicationError as exc:
        started_here = selectors.oauth_state_started_by(state=raw_state, user=request.user)
        if started_here and exc.code != "browser_mismatch":
            messages.error(request, exc.message)
            return redirect("connections:list")
        return _result_page(request, ok=False, title="Connection failed", message=exc.message)
    state = outcome.state
    spec = service_get(state.service)
    if outcome.confirm_nonce:
        confirm = redirect("connections:confirm", link_id=state.pk)
        return _nonce_keep(request, confirm, outcome.confirm_nonce)
    if state.origin == OAuthState.Origin.DASHBOARD:
        messages.success(request, f"Connected {spec.label}.")
        return redirect("connections:list")
    return _result_page(
        request,
        ok=True,
        title=f"{spec.label} connected",
        message="You can close this window and return to the terminal.",
    )


def _sign_in_first(request: HttpRequest, preview: services.LinkPreview) -> HttpResponse:
    """Send a logged-out browser to sign in as the account, then back here."""
    target = preview.target.user
    assert target is not None
    back = urlencode({"next": request.get_full_path()})
    if target.has_usable_password():
        messages.info(request, f"Sign in to Kay as {target.email} to confirm your CLI.")
        return redirect(f"{reverse('account_login')}?{back}")
    messages.info(
        request,
        f"Your Kay account {target.email} has no password: we will email you a sign-in code.",
    )
    return redirect(f"{reverse('account_request_login_code')}?{back}")


@require_http_methods(["GET", "POST"])
def oauth_link_confirm(request: HttpRequest, link_id: int) -> HttpResponse:
    """Confirm signing a CLI in: the code it printed, its address and the time, the
    account. Only this browser, signed in as that account, can continue; only a POST
    (with CSRF) links anything."""
    nonces = _nonces(request)
    if request.method == "POST":
        try:
            state = services.oauth_link_confirm(
                link_id=link_id,
                browser_nonces=nonces,
                browser_user=request.user,
                approve=request.POST.get("action") == "link",
                request_origin=RequestOrigin.of(request),
            )
        except ApplicationError as exc:
            if exc.code == "wrong_account":
                return redirect("connections:confirm", link_id=link_id)
            title = "Cancelled" if exc.code == "access_denied" else "Connection failed"
            return _result_page(request, ok=False, title=title, message=exc.message)
        spec = service_get(state.service)
        return _result_page(
            request,
            ok=True,
            title=f"{spec.label} connected",
            message="You can close this window and return to the terminal.",
            signed_in_as=state.user.email if state.user and state.cli_session_id else "",
        )
    try:
        preview = services.oauth_link_preview(
            link_id=link_id, browser_nonces=nonces, browser_user=request.user
        )
    except ApplicationError as exc:
        return _result_page(request, ok=False, title="Connection failed", message=exc.message)
    target = preview.target
    if not target.allows(request.user) and not request.user.is_authenticated:
        return _sign_in_first(request, preview)
    context = {
        "preview": preview,
        "state": preview.state,
        "service": preview.spec,
        "target": target,
        "allowed": target.allows(request.user),
        "user_code": user_code_format(preview.state.user_code),
    }
    return _no_store(render(request, "connections/callback_confirm.html", context))
