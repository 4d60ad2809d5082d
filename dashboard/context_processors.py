from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from billing.services.low_balance import low_balance_for
from dashboard.navigation import nav_items
from usage.selectors import budget_warnings


def navigation(request: HttpRequest) -> dict[str, Any]:
    """The sidebar's links for a signed-in user, and the low-balance and budget banners'
    states."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return {
            "nav_items": nav_items(request),
            # Read only on a page that shows the banner: one small query at most.
            "low_balance": SimpleLazyObject(lambda: low_balance_for(user_id=user.pk)),
            # Budgets at 80 % or more this month: one query for a user without budgets.
            "budget_warnings": SimpleLazyObject(
                lambda: budget_warnings(owner=user, month=datetime.now(UTC).date())
            ),
        }
    return {}
