"""Who an OAuth connection belongs to, and the Atlassian profile kept for them.

A Kay session's first connection signs a CLI in, so it goes to: the user already linked
to the Atlassian account; else the user signed in to the browser that confirms; else the
Kay account whose email both Atlassian and Kay have verified (the browser must then sign
in as that account); else a new account from the verified email. An existing account is
never taken over by email alone, and never without its owner confirming in a browser
signed in to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from allauth.account.models import EmailAddress
from django.utils import timezone

from accounts.models import AtlassianProfile, User, normalize_email
from connections.models import KaySession
from connections.providers import Identity
from core.errors import ApplicationError


class CallbackError(ApplicationError):
    """The OAuth callback cannot complete; shown on the callback page."""

    status = 400


@dataclass(frozen=True)
class LinkTarget:
    """The account a CLI's first connection signs in to; ``user`` None means a new one."""

    user: User | None
    email: str

    def allows(self, browser_user: Any) -> bool:
        """Whether the browser may confirm: signed in as the account, or any browser when
        the account would be new."""
        if self.user is None:
            return True
        return bool(getattr(browser_user, "is_authenticated", False)) and (
            browser_user.pk == self.user.pk
        )


def link_target(*, identity: Identity, browser_user: Any) -> LinkTarget:
    """Who a CLI's first connection would sign in as (see the module docstring)."""
    profile = (
        AtlassianProfile.objects.select_related("user")
        .filter(account_id=identity.account_id)
        .first()
    )
    if profile is not None:
        return LinkTarget(profile.user, profile.user.email)
    if browser_user is not None and browser_user.is_authenticated:
        return LinkTarget(browser_user, browser_user.email)
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
    if existing is None:
        return LinkTarget(None, email)
    verified_here = EmailAddress.objects.filter(
        user=existing, email__iexact=email, verified=True
    ).exists()
    if not verified_here:
        raise CallbackError(
            "A Kay account with this email already exists. Sign in to Kay in this browser, "
            "then connect again to link it.",
            code="email_in_use",
        )
    return LinkTarget(existing, existing.email)


def user_for_session(*, identity: Identity, session: KaySession) -> User:
    """A later connection of a signed-in session stays with its user."""
    assert session.user is not None
    linked = AtlassianProfile.objects.filter(account_id=identity.account_id).first()
    if linked is not None and linked.user_id != session.user_id:
        raise CallbackError(
            "This Atlassian account is linked to another Kay account.",
            code="account_linked_elsewhere",
        )
    return session.user


def user_create_from_identity(*, identity: Identity, email: str) -> User:
    """A new, passwordless account with the email Atlassian verified (it signs in by code)."""
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
