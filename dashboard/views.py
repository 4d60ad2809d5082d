"""The overview and the placeholder pages of sections whose app has not landed yet."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard.navigation import PLACEHOLDER, SECTIONS_BY_SLUG
from dashboard.selectors import onboarding_steps


@login_required
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    steps = onboarding_steps(user=request.user)  # type: ignore[arg-type]
    context = {"next_steps": steps, "all_done": all(step.done for step in steps)}
    return render(request, "dashboard/overview.html", context)


@login_required
@require_GET
def section(request: HttpRequest, slug: str) -> HttpResponse:
    found = SECTIONS_BY_SLUG.get(slug)
    if found is None or found.url_name != PLACEHOLDER:
        raise Http404("No such section")
    return render(request, "dashboard/section.html", {"section": found})
