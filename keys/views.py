"""Dashboard pages for keys and projects. Thin: a form, an owner-scoped read, one service."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.authentication import user_of
from core.errors import ApplicationError, NotFound
from core.forms import service_errors_on
from core.views import redirect_back
from keys import selectors, services
from keys.forms import ApiKeyEditForm, ApiKeyForm, ProjectForm, RotateForm
from keys.models import ApiKey, KeyAuditEvent, Project
from keys.providers import PROVIDERS, Check

PAGE = KeyAuditEvent.Source.DASHBOARD


def _get_key_for_user(request: HttpRequest, key_id: int) -> ApiKey:
    try:
        return selectors.api_key_get(owner=user_of(request), key_id=key_id)
    except NotFound as exc:
        raise Http404(exc.message) from None


def _get_project_for_user(request: HttpRequest, project_id: int) -> Project:
    try:
        return selectors.project_get(owner=user_of(request), project_id=project_id)
    except NotFound as exc:
        raise Http404(exc.message) from None


def saved_message(request: HttpRequest, check: Check, done: str = "Key saved") -> None:
    """What a save left behind: green only when the provider accepted the key; a key it
    could not be asked about is saved, but says so in amber."""
    if check.status == "valid":
        messages.success(request, f"{done} and verified.")
    else:
        messages.warning(request, f"{done} but not verified. {check.detail}")


# --- Keys --------------------------------------------------------------------------------


@login_required
@require_GET
def key_list(request: HttpRequest) -> HttpResponse:
    owner = user_of(request)
    project_id = request.GET.get("project", "")
    provider = request.GET.get("provider", "")
    try:
        keys = list(selectors.api_key_list(owner=owner, project_id=project_id, provider=provider))
    except ApplicationError:
        keys = []
    context = {
        "keys": keys,
        "projects": list(selectors.project_list(owner=owner)),
        "providers": PROVIDERS.values(),
        "selected_project": project_id,
        "selected_provider": provider,
        "filtered": bool(project_id or provider),
        "invalid_count": selectors.invalid_key_count(owner=owner),
        "recent_events": selectors.audit_events_for_owner(owner=owner, limit=10),
    }
    template = "keys/_key_table.html" if request.htmx else "keys/key_list.html"  # type: ignore[attr-defined]
    return render(request, template, context)


def create_key_from_form(request: HttpRequest, form: ApiKeyForm) -> tuple[ApiKey, Check]:
    """Save the key of a valid ``ApiKeyForm`` (validated with its provider first)."""
    data = form.cleaned_data
    return services.api_key_create(
        acting_user=user_of(request),
        provider=data["provider"],
        name=data["name"],
        secret=data["key"],
        project=data["project"],
        base_url=data["base_url"] or "",
        is_default=data["is_default"],
        origin=services.Origin.of(request, PAGE),
    )


@sensitive_post_parameters("key")
@login_required
@require_http_methods(["GET", "POST"])
def key_new(request: HttpRequest) -> HttpResponse:
    owner = user_of(request)
    initial = {"project": request.GET.get("project") or None}
    form = ApiKeyForm(request.POST or None, owner=owner, initial=initial)
    if request.method == "POST" and form.is_valid():
        with service_errors_on(form):
            api_key, check = create_key_from_form(request, form)
            saved_message(request, check)
            return redirect("keys:detail", key_id=api_key.pk)
    status = 400 if form.errors else 200
    context = {"form": form, "providers": PROVIDERS.values()}
    return render(request, "keys/key_new.html", context, status=status)


@sensitive_post_parameters("key")
@login_required
@require_POST
def key_check(request: HttpRequest) -> HttpResponse:
    """htmx: check a pasted key with its provider before saving (nothing is stored)."""
    form = ApiKeyForm(request.POST, owner=user_of(request))
    form.is_valid()
    data = form.cleaned_data
    context: dict = {}
    if "provider" not in data or "key" not in data:
        context["error"] = "Choose a provider and paste the key first."
    else:
        try:
            context["check"] = services.api_key_check(
                acting_user=user_of(request),
                provider=data["provider"],
                secret=data["key"],
                base_url=data.get("base_url") or "",
            )
        except ApplicationError as exc:
            context["error"] = exc.message
    return render(request, "keys/_check_result.html", context)


@login_required
@require_GET
def key_hint(request: HttpRequest) -> HttpResponse:
    """htmx: the expected format of the chosen provider's keys."""
    provider = PROVIDERS.get(request.GET.get("provider", ""))
    return render(request, "keys/_hint.html", {"provider": provider})


@login_required
@require_GET
def key_detail(request: HttpRequest, key_id: int) -> HttpResponse:
    api_key = _get_key_for_user(request, key_id)
    return _render_detail(request, api_key)


def _render_detail(
    request: HttpRequest,
    api_key: ApiKey,
    edit_form: ApiKeyEditForm | None = None,
    rotate_form: RotateForm | None = None,
    status: int = 200,
) -> HttpResponse:
    owner = user_of(request)
    edit_form = edit_form or ApiKeyEditForm(
        owner=owner,
        initial={
            "name": api_key.name,
            "project": api_key.project_id,
            "is_default": api_key.is_default,
        },
    )
    context = {
        "key": api_key,
        "provider": PROVIDERS.get(api_key.provider),
        "edit_form": edit_form,
        "rotate_form": rotate_form or RotateForm(),
        "events": selectors.audit_events_for_key(owner=owner, api_key=api_key),
    }
    return render(request, "keys/key_detail.html", context, status=status)


@login_required
@require_POST
def key_edit(request: HttpRequest, key_id: int) -> HttpResponse:
    api_key = _get_key_for_user(request, key_id)
    form = ApiKeyEditForm(request.POST, owner=user_of(request))
    if form.is_valid():
        with service_errors_on(form):
            services.api_key_update(
                acting_user=user_of(request),
                api_key=api_key,
                name=form.cleaned_data["name"],
                project=form.cleaned_data["project"],
                is_default=form.cleaned_data["is_default"],
                origin=services.Origin.of(request, PAGE),
            )
            messages.success(request, "Key updated.")
            return redirect("keys:detail", key_id=api_key.pk)
    api_key.refresh_from_db()
    return _render_detail(request, api_key, edit_form=form, status=400)


@sensitive_post_parameters("key")
@login_required
@require_POST
def key_rotate(request: HttpRequest, key_id: int) -> HttpResponse:
    api_key = _get_key_for_user(request, key_id)
    form = RotateForm(request.POST)
    if form.is_valid():
        with service_errors_on(form):
            _, check = services.api_key_rotate(
                acting_user=user_of(request),
                api_key=api_key,
                secret=form.cleaned_data["key"],
                origin=services.Origin.of(request, PAGE),
            )
            saved_message(request, check, "Key rotated")
            return redirect("keys:detail", key_id=api_key.pk)
    api_key.refresh_from_db()
    return _render_detail(request, api_key, rotate_form=form, status=400)


@login_required
@require_POST
def key_revalidate(request: HttpRequest, key_id: int) -> HttpResponse:
    api_key = _get_key_for_user(request, key_id)
    try:
        check = services.api_key_revalidate(
            api_key=api_key, acting_user=user_of(request), origin=services.Origin.of(request, PAGE)
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        level = {"valid": messages.SUCCESS, "invalid": messages.ERROR}.get(
            check.status, messages.WARNING
        )
        messages.add_message(request, level, check.detail)
    return redirect_back(request, reverse("keys:detail", args=[api_key.pk]))


@login_required
@require_http_methods(["GET", "POST"])
def key_delete(request: HttpRequest, key_id: int) -> HttpResponse:
    api_key = _get_key_for_user(request, key_id)
    if request.method == "POST":
        services.api_key_delete(
            acting_user=user_of(request), api_key=api_key, origin=services.Origin.of(request, PAGE)
        )
        messages.success(request, f"Key “{api_key.name}” deleted.")
        return redirect("keys:list")
    return render(request, "keys/key_confirm_delete.html", {"key": api_key})


# --- Projects ----------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def project_list(request: HttpRequest) -> HttpResponse:
    owner = user_of(request)
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with service_errors_on(form):
            project = services.project_create(
                acting_user=owner,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                origin=services.Origin.of(request, PAGE),
            )
            messages.success(request, f"Project “{project.name}” created.")
            return redirect("keys:project_detail", project_id=project.pk)
    projects = list(selectors.project_list(owner=owner))
    status = 400 if form.errors else 200
    return render(
        request, "keys/project_list.html", {"projects": projects, "form": form}, status=status
    )


@login_required
@require_http_methods(["GET", "POST"])
def project_detail(request: HttpRequest, project_id: int) -> HttpResponse:
    owner = user_of(request)
    project = _get_project_for_user(request, project_id)
    initial = {"name": project.name, "description": project.description}
    form = ProjectForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        with service_errors_on(form):
            services.project_update(
                acting_user=owner,
                project=project,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                origin=services.Origin.of(request, PAGE),
            )
            messages.success(request, "Project saved.")
            return redirect("keys:project_detail", project_id=project.pk)
    keys = list(selectors.api_key_list(owner=owner, project_id=project.pk))
    status = 400 if form.errors else 200
    return render(
        request,
        "keys/project_detail.html",
        {"project": project, "keys": keys, "form": form},
        status=status,
    )


@login_required
@require_POST
def project_delete(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _get_project_for_user(request, project_id)
    try:
        services.project_delete(
            acting_user=user_of(request), project=project, origin=services.Origin.of(request, PAGE)
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("keys:project_detail", project_id=project.pk)
    messages.success(request, f"Project “{project.name}” deleted.")
    return redirect("keys:project_list")
