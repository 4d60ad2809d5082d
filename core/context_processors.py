from typing import Any

from django.conf import settings
from django.http import HttpRequest

from core.navigation import nav_items


def kay(request: HttpRequest) -> dict[str, Any]:
    context: dict[str, Any] = {
        "DEBUG": settings.DEBUG,
        "GOOGLE_LOGIN_ENABLED": "google" in settings.SOCIALACCOUNT_PROVIDERS,
    }
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        context["nav_items"] = nav_items(request)
    return context
