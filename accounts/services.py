"""Writes for accounts."""

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db import transaction

from accounts.models import User, normalize_email


@transaction.atomic
def user_get_or_create_for_fake_login(*, email: str) -> User:
    """Find or create the user for a development fake login, with a verified email.

    Emails at ``FAKE_LOGIN_ADMIN_DOMAIN`` become staff (seed 000, "Proxy to production").
    """
    email = normalize_email(email)
    is_admin = email.rsplit("@", 1)[-1] == settings.FAKE_LOGIN_ADMIN_DOMAIN.lower()
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        user = User.objects.create_user(email=email)
        user.set_unusable_password()
    if is_admin and not user.is_staff:
        user.is_staff = True
        user.is_superuser = True
    user.save()
    EmailAddress.objects.update_or_create(
        user=user, email=email, defaults={"verified": True, "primary": True}
    )
    return user


def user_update_profile(*, user: User, name: str) -> User:
    """Change the display name shown in the dashboard and in assistant prompts."""
    user.name = name.strip()
    user.save(update_fields=["name"])
    return user
