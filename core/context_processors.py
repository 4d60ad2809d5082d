from typing import Any

from django.conf import settings
from django.http import HttpRequest


def kay(request: HttpRequest) -> dict[str, Any]:
    context: dict[str, Any] = {
        "DEBUG": settings.DEBUG,
        "GOOGLE_LOGIN_ENABLED": "google" in settings.SOCIALACCOUNT_PROVIDERS,
    }
    return context
