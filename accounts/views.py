"""Account pages: API tokens and signed-in CLIs, device approval, security activity, and
the development login."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import devices, tokens
from accounts.forms import (
    ApiTokenForm,
    DeleteAccountForm,
    FakeLoginForm,
    ProfileForm,
    UserCodeForm,
)
from accounts.models import ApiToken, CliSession, User
from accounts.selectors import (
    api_token_get_for_user,
    api_tokens_for,
    atlassian_profile_for,
    cli_session_for,
    cli_sessions_for,
    security_events_for,
    user_deletion_summary,
)
from accounts.services import (
    OPERATOR_NOT_DELETED,
    RequestOrigin,
    user_delete,
    user_get_or_create_for_fake_login,
    user_update_profile,
)
from core.clientip import client_ip
from core.errors import ApplicationError, NotFound
from core.forms import add_application_error

SECURITY_EVENTS_PER_PAGE = 25


@require_http_methods(["GET", "POST"])
def fake_login(request: HttpRequest) -> HttpResponse:
    """Development-only login as any email (only routed when DEBUG is true)."""
    if not settings.DEBUG:  # belt and braces: the URL is not even routed without DEBUG
        raise Http404
    form = FakeLoginForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = user_get_or_create_for_fake_login(email=form.cleaned_data["email"])
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect(reverse("dashboard:overview"))
    return render(request, "accounts/fake_login.html", {"form": form})


@login_required
@require_GET
def security_activity(request: HttpRequest) -> HttpResponse:
    """Account → Security activity: sign-ins, tokens and connections, newest first."""
    pages = Paginator(security_events_for(user=request.user), SECURITY_EVENTS_PER_PAGE)
    page = pages.get_page(request.GET.get("page"))
    response = render(request, "accounts/security.html", {"page": page})
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    form = ApiTokenForm(request.POST or None)
    new_token = None
    if request.method == "POST" and form.is_valid():
        try:
            row, new_token = tokens.api_token_create(
                user=user, name=form.cleaned_data["name"], origin=RequestOrigin.of(request)
            )
        except ApplicationError as exc:  # e.g. the per-account token limit
            add_application_error(form, exc)
        else:
            messages.success(request, f"Created “{row.name}”. Copy it now: it is shown only once.")
            form = ApiTokenForm()
    context = {
        "form": form,
        "new_token": new_token,
        "tokens": api_tokens_for(user=user),
        "sessions": cli_sessions_for(user=user),
    }
    response = render(request, "accounts/tokens.html", context)
    response["Cache-Control"] = "no-store"
    return response


def _get_token_for_user(request: HttpRequest, token_id: int) -> ApiToken:
    """The caller's token; someone else's is a 404, exactly like one that never existed."""
    try:
        return api_token_get_for_user(user=request.user, token_id=token_id)
    except NotFound as exc:
        raise Http404(exc.message) from None


def _get_cli_session_for_user(request: HttpRequest, public_id: str) -> CliSession:
    session = cli_session_for(user=request.user, public_id=public_id)
    if session is None:
        raise Http404("No such CLI sign-in.")
    return session


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    found = _get_token_for_user(request, token_id)
    tokens.api_token_revoke(token=found, actor=found.user, origin=RequestOrigin.of(request))
    messages.success(request, f"Revoked “{found.name}”. It no longer works.")
    return redirect("accounts:tokens")


@login_required
@require_POST
def cli_session_end(request: HttpRequest, public_id: str) -> HttpResponse:
    session = _get_cli_session_for_user(request, public_id)
    tokens.cli_session_revoke(
        session=session,
        reason="signed_out_from_dashboard",
        actor=session.user,
        origin=RequestOrigin.of(request),
    )
    messages.success(request, "Signed that CLI out.")
    return redirect(
        "accounts:settings" if request.POST.get("back") == "settings" else "accounts:tokens"
    )


@login_required
@require_http_methods(["GET", "POST"])
def device_verify(request: HttpRequest) -> HttpResponse:
    """Enter the CLI's code, see which client asks, approve or deny (RFC 8628 §3.3)."""
    user: User = request.user  # type: ignore[assignment]
    action = request.POST.get("action", "")
    address = client_ip(request)
    form = UserCodeForm(request.POST or request.GET or None)
    context: dict = {"form": form, "pending": None, "decided": None}
    status = 200
    headers: dict[str, str] = {}
    if form.is_bound and form.is_valid():
        code = form.cleaned_data["user_code"]
        try:
            if request.method == "POST" and action in ("approve", "deny"):
                profile = atlassian_profile_for(user=user)
                row = devices.device_authorization_decide(
                    user=user,
                    user_code=code,
                    approve=action == "approve",
                    account_id=profile.account_id if profile else "",
                    client_ip=address,
                )
                context["decided"] = row
            else:
                context["pending"] = devices.device_authorization_find(
                    user=user, user_code=code, client_ip=address
                )
                context["user_code"] = devices.user_code_format(devices.user_code_normalize(code))
        except ApplicationError as exc:  # a wrong code, or too many (429, Retry-After)
            add_application_error(form, exc, field="user_code")
            status, headers = exc.status, exc.headers
    response = render(request, "accounts/device.html", context, status=status)
    response["Cache-Control"] = "no-store"
    for name, value in headers.items():
        response[name] = value
    return response


@login_required
@require_http_methods(["GET", "POST"])
def account_settings(request: HttpRequest) -> HttpResponse:
    """Account → Settings: name, email addresses, password, signed-in CLIs, recent
    security activity, and deleting the account (saying what goes with it)."""
    user: User = request.user  # type: ignore[assignment]
    action = request.POST.get("action") if request.method == "POST" else None
    profile = ProfileForm(
        request.POST if action == "profile" else None, initial={"name": user.name}
    )
    delete = DeleteAccountForm(request.POST if action == "delete" else None)
    if action == "profile" and profile.is_valid():
        user_update_profile(user=user, name=profile.cleaned_data["name"])
        messages.success(request, "Saved your name.")
        return redirect("accounts:settings")
    if action == "delete" and delete.is_valid():
        try:
            user_delete(user=user, confirm_email=delete.cleaned_data["confirm_email"])
        except ApplicationError as exc:
            delete.add_error("confirm_email", exc.message)
        else:
            logout(request)
            messages.success(request, "Your account and everything in it were deleted.")
            return redirect("account_login")
    context = {
        "profile_form": profile,
        "delete_form": delete,
        "emails": EmailAddress.objects.filter(user=user).order_by("-primary", "email"),
        "has_password": user.has_usable_password(),
        "sessions": cli_sessions_for(user=user),
        "events": security_events_for(user=user)[:5],
        "deletes": user_deletion_summary(user=user),
        # Operator accounts are not deleted here (user_delete says why).
        "not_deletable": OPERATOR_NOT_DELETED if user.is_staff or user.is_superuser else "",
    }
    status = 400 if action and (profile.errors or delete.errors) else 200
    response = render(request, "accounts/settings.html", context, status=status)
    response["Cache-Control"] = "no-store"
    return response
