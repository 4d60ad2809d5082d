from typing import Any

from django.http import HttpRequest

from dashboard.navigation import nav_items


def navigation(request: HttpRequest) -> dict[str, Any]:
    """The sidebar's links for a signed-in user."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return {"nav_items": nav_items(request)}
    return {}
