"""allauth adapters: emails are stored lower-case, like the User model does; the client
address (allauth's rate limits) is the one the rest of Kay uses."""

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

from accounts.models import normalize_email
from core.clientip import client_ip


class AccountAdapter(DefaultAccountAdapter):
    def clean_email(self, email: str) -> str:
        return normalize_email(super().clean_email(email))

    def get_client_ip(self, request: HttpRequest) -> str:
        ip = client_ip(request)
        if not ip:  # as allauth's own: no address, no rate-limit key
            raise PermissionDenied("Unable to determine the client address.")
        return ip


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def get_app(self, request: HttpRequest, provider: Any, client_id: Any = None) -> Any:
        # A provider this server has no credentials for has no pages: 404, not a 500.
        try:
            return super().get_app(request, provider, client_id=client_id)
        except SocialApp.DoesNotExist:
            raise Http404("This sign-in method is not available on this server.") from None

    def populate_user(self, request: HttpRequest, sociallogin: Any, data: dict[str, Any]) -> Any:
        user = super().populate_user(request, sociallogin, data)
        full_name = " ".join(p for p in (data.get("first_name"), data.get("last_name")) if p)
        user.name = data.get("name") or full_name
        user.email = normalize_email(user.email)
        return user
