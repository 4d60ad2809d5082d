"""Who an OAuth connection belongs to, and the Atlassian profile kept for them.

Issue 4, "Identity on first connection": the user already linked to the Atlassian
account; else the user logged in to the browser that finishes the callback; else a new
user from the profile's email, which Atlassian must have verified. An existing account is
never taken over by email alone: only when both Atlassian and Kay have verified that
address.
"""

from __future__ import annotations

from typing import Any

from allauth.account.models import EmailAddress
from django.utils import timezone

from accounts.models import User, normalize_email
from connections.models import AtlassianProfile, KaySession
from connections.providers import Identity
from core.errors import ApplicationError


class CallbackError(ApplicationError):
    """The OAuth callback cannot complete; shown on the callback page."""

    status = 400


def resolve_user(*, identity: Identity, session: KaySession, browser_user: Any) -> User:
    """Who this connection belongs to (the rules of issue 4, "Identity on first connection")."""
    linked = AtlassianProfile.objects.select_related("user").filter(account_id=identity.account_id)
    profile = linked.first()
    if session.user is not None:
        if profile is not None and profile.user_id != session.user_id:
            raise CallbackError(
                "This Atlassian account is linked to another Kay account.",
                code="account_linked_elsewhere",
            )
        return session.user
    if profile is not None:
        return profile.user
    if browser_user is not None and browser_user.is_authenticated:
        return browser_user
    email = normalize_email(identity.email)
    if not email:
        raise CallbackError(
            "Your Atlassian profile has no email address we can use. Sign in to Kay in "
            "this browser, then connect again.",
            code="no_email",
        )
    if not identity.email_verified:
        # A new account from an address nobody verified could be pre-registered for
        # someone else's email, and later shared with them after a password reset.
        raise CallbackError(
            "Your Atlassian email address is not verified. Verify it with Atlassian, or "
            "sign in to Kay in this browser, then connect again.",
            code="email_not_verified",
        )
    existing = User.objects.filter(email__iexact=email).first()
    if existing is not None:
        verified_here = EmailAddress.objects.filter(
            user=existing, email__iexact=email, verified=True
        ).exists()
        if verified_here:
            return existing
        raise CallbackError(
            "A Kay account with this email already exists. Sign in to Kay in this browser, "
            "then connect again to link it.",
            code="email_in_use",
        )
    user = User.objects.create_user(email=email, name=identity.name[:150])
    user.set_unusable_password()
    user.save(update_fields=["password"])
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def store_profile(user: User, identity: Identity) -> None:
    profile = AtlassianProfile.objects.filter(user=user).first()
    if profile is not None and profile.account_id != identity.account_id:
        return  # the user's primary Atlassian identity stays as first linked
    fields = {
        "name": identity.name[:200],
        "email": identity.email,
        "email_verified": identity.email_verified,
        "picture": identity.picture[:500],
        "account_type": identity.account_type[:32],
        "account_status": identity.account_status[:32],
        "updated_at": timezone.now(),
    }
    AtlassianProfile.objects.update_or_create(
        user=user, defaults={"account_id": identity.account_id, **fields}
    )
