"""The first-run wizard page (seed 002): project → keys → validate → done."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from accounts.authentication import user_of
from core.errors import ApplicationError
from core.forms import add_application_error
from core.ids import parse_id
from keys import selectors, services
from keys.forms import ApiKeyForm, ProjectForm
from keys.models import OnboardingSession
from keys.views import PAGE, create_key_from_form, saved_message

STEP_TITLES = ["Create a project", "Add your keys", "Check your keys", "Done"]


@sensitive_post_parameters("key")
@login_required
@require_http_methods(["GET", "POST"])
def onboarding(request: HttpRequest) -> HttpResponse:
    owner = user_of(request)
    session = services.onboarding_start(user=owner)
    projects = list(selectors.project_list(owner=owner))
    project_form = ProjectForm(request.POST if _action(request) == "project" else None)
    key_form = ApiKeyForm(
        request.POST if _action(request) == "key" else None,
        owner=owner,
        initial={"project": projects[-1].pk if projects else None},
    )
    if request.method == "POST":
        done = _handle(request, session, project_form, key_form)
        if done:
            return redirect("keys:onboarding")
    # A finished step can be revisited (?step=2 to add more keys), never a future one.
    step = session.current_step
    wanted = parse_id(request.GET.get("step"))
    if wanted is not None and wanted < step:
        step = wanted
    context = {
        "session": session,
        "step": step,
        "steps": [
            {"number": n, "title": title, "done": n < session.current_step or session.completed_at}
            for n, title in enumerate(STEP_TITLES, start=1)
        ],
        "percent": round(session.progress * 100),
        "projects": projects,
        "keys": list(selectors.api_key_list(owner=owner)),
        "project_form": project_form,
        "key_form": key_form,
    }
    status = 400 if project_form.errors or key_form.errors else 200
    return render(request, "keys/onboarding.html", context, status=status)


def _action(request: HttpRequest) -> str:
    return request.POST.get("action", "") if request.method == "POST" else ""


def _handle(
    request: HttpRequest,
    session: OnboardingSession,
    project_form: ProjectForm,
    key_form: ApiKeyForm,
) -> bool:
    """Run one wizard action; True when it succeeded (the page redirects)."""
    owner = user_of(request)
    action = _action(request)
    try:
        if action == "project":
            if not project_form.is_valid():
                return False
            services.project_create(
                acting_user=owner,
                name=project_form.cleaned_data["name"],
                description=project_form.cleaned_data["description"],
                origin=services.Origin.of(request, PAGE),
            )
            services.onboarding_step_done(user=owner, step=1)
        elif action == "key":
            if not key_form.is_valid():
                return False
            api_key, check = create_key_from_form(request, key_form)
            saved_message(request, check, f"Added “{api_key.name}” ({api_key.masked_key})")
        elif action == "keys_done":
            services.onboarding_step_done(user=owner, step=2)
        elif action == "finish":
            services.onboarding_step_done(user=owner, step=3)
        else:
            messages.error(request, "Unknown action.")
            return True
    except ApplicationError as exc:
        form = project_form if action == "project" else key_form
        if action in ("project", "key"):
            add_application_error(form, exc)
            return False
        messages.error(request, exc.message)
    return True
