"""Content-Security-Policy: django-csp's middleware, plus the OAuth servers forms lead to."""

from typing import Any
from urllib.parse import urlsplit

from csp.middleware import CSPMiddleware as BaseCSPMiddleware
from csp.middleware import PolicyParts
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from core.inline_middleware import InlineHooks

GOOGLE_AUTHORIZE_URL = "https://accounts.google.com/o/oauth2/v2/auth"


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def oauth_form_origins() -> list[str]:
    """Origins that a form of ours redirects to: the connect buttons POST and are sent on to
    Atlassian or Bitbucket, "Sign in with Google" to Google. Browsers check form-action on
    those redirects too."""
    urls = [settings.ATLASSIAN_AUTH_URL, settings.BITBUCKET_AUTH_URL]
    google: dict[str, Any] | None = settings.SOCIALACCOUNT_PROVIDERS.get("google")
    if google is not None:
        urls.append(google.get("AUTHORIZE_URL", GOOGLE_AUTHORIZE_URL))
    return sorted({origin for url in urls if (origin := _origin(url))})


class CSPMiddleware(InlineHooks, BaseCSPMiddleware):
    """Adds :func:`oauth_form_origins` to ``form-action``, read from settings per response
    so the policy always names the servers the connect views really redirect to. Its
    hooks (a nonce, a header) do no I/O: under ASGI they run on the event loop."""

    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if not report_only:
            update = dict(parts.update or {})
            update["form-action"] = [*update.get("form-action", []), *oauth_form_origins()]
            parts.update = update
        return parts
