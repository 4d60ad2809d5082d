"""Pages owned by accounts: security activity and the development login."""

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from accounts.auth_selectors import security_events_for
from accounts.forms import FakeLoginForm
from accounts.services import user_get_or_create_for_fake_login

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
