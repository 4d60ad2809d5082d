"""Connection pages: the dashboard's Connections page and the OAuth callback page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from connections import selectors, services
from connections.models import OAuthState
from connections.registry import service_get
from core.errors import ApplicationError


@login_required
@require_GET
def connection_list(request: HttpRequest) -> HttpResponse:
    statuses = selectors.service_statuses_for(user=request.user)
    return render(request, "connections/list.html", {"statuses": statuses})


@login_required
@require_POST
def connection_start(request: HttpRequest, service: str) -> HttpResponse:
    """Connect from the browser: straight to the provider's consent screen."""
    try:
        started = services.connection_start(
            service=service,
            user=request.user,  # type: ignore[arg-type]
            origin=OAuthState.Origin.DASHBOARD,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("connections:list")
    return redirect(started.authorization_url)


@login_required
@require_POST
def connection_remove(request: HttpRequest, service: str) -> HttpResponse:
    try:
        spec = service_get(service)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("connections:list")
    services.connection_disconnect(user=request.user, service=spec.name)  # type: ignore[arg-type]
    messages.success(request, f"Disconnected {spec.label}. Its tokens were deleted.")
    return redirect("connections:list")


def _confirm_link(request: HttpRequest, state: OAuthState) -> HttpResponse:
    """Ask the logged-in user before a CLI they may not own signs in as them.

    Anyone can run ``kay connect``, consent with their own Atlassian account and send the
    callback link to a logged-in victim; without this step the victim's browser would link
    that Atlassian account to the victim and hand the attacker's CLI the victim's tokens.
    """
    params = request.GET
    context = {
        "service": service_get(state.service),
        "fields": {key: params.get(key, "") for key in ("state", "code", "service")},
    }
    response = render(request, "connections/callback_confirm.html", context)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


@require_http_methods(["GET", "POST"])
def oauth_callback(request: HttpRequest) -> HttpResponse:
    """Where Atlassian and Bitbucket send the browser back (seed 003 step 3).

    A CLI's first connection finished in a browser that is logged in to Kay would sign
    the CLI in as that user: the page asks first, and only a POST (with CSRF) links them.
    """
    params = request.POST if request.method == "POST" else request.GET
    error = params.get("error") or None
    browser_user = request.user
    if request.method == "GET" and not error and request.user.is_authenticated:
        awaiting = selectors.oauth_state_awaiting_link(state=params.get("state", ""))
        if awaiting is not None:
            return _confirm_link(request, awaiting)
    if request.method == "POST" and params.get("action") != "link":
        error = "access_denied"
    try:
        state = services.oauth_callback_complete(
            state=params.get("state", ""),
            service=params.get("service") or None,
            code=params.get("code") or None,
            error=error,
            browser_user=browser_user,
        )
    except ApplicationError as exc:
        found = OAuthState.objects.filter(
            state_hash=services.token_hash(params.get("state", ""))
        ).first()
        if found is not None and found.origin == OAuthState.Origin.DASHBOARD:
            messages.error(request, exc.message)
            return redirect("connections:list")
        context = {"ok": False, "title": "Connection failed", "message": exc.message}
        return render(request, "connections/callback.html", context, status=400)
    spec = service_get(state.service)
    if state.origin == OAuthState.Origin.DASHBOARD:
        messages.success(request, f"Connected {spec.label}.")
        return redirect("connections:list")
    context = {
        "ok": True,
        "title": f"{spec.label} connected",
        "message": "You can close this window and return to the terminal.",
        "service": spec,
        "signed_in_as": state.user.email if state.cli_session_id and state.user else "",
    }
    return render(request, "connections/callback.html", context)
