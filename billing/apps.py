from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_save


def _grant_on_sign_up(sender: Any, instance: Any, created: bool, raw: bool, **kwargs: Any) -> None:
    """Every new account gets the starter grant, however it was made (sign-up, social
    login, ``createsuperuser``, the CLI): it hangs on the user's creation, not a view."""
    if created and not raw:
        from billing.services import credits_grant_starter

        credits_grant_starter(instance)


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from billing.selectors import settings_check

        settings_check()
        post_save.connect(
            _grant_on_sign_up, sender=settings.AUTH_USER_MODEL, dispatch_uid="billing_starter"
        )
