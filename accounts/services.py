"""Writes for accounts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db import transaction

from accounts.models import SecurityEvent, User, normalize_email
from core.clientip import client_ip
from core.errors import ApplicationError, PermissionDenied

logger = logging.getLogger(__name__)

Kind = SecurityEvent.Kind


@dataclass(frozen=True)
class RequestOrigin:
    """Where a security-relevant request came from: the client address and program."""

    ip: str | None = None
    client: str = ""

    @classmethod
    def of(cls, request: Any) -> RequestOrigin:
        return cls(ip=client_ip(request) or None, client=request.META.get("HTTP_USER_AGENT", ""))


NOWHERE = RequestOrigin()


def security_event_record(
    *,
    user: User | Any,
    kind: str,
    origin: RequestOrigin = NOWHERE,
    actor: User | None = None,
    detail: dict[str, Any] | None = None,
) -> SecurityEvent:
    """Record one event on ``user``'s security trail. ``detail`` must never hold a secret."""
    return SecurityEvent.objects.create(
        user_id=getattr(user, "pk", user),
        actor=actor,
        kind=kind,
        ip_address=origin.ip,
        client=origin.client[:200],
        detail=detail or {},
    )


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


OPERATOR_NOT_DELETED = (
    "This is an operator account. Ask another operator to remove its operator access in the "
    "operator console, then delete it here."
)


@transaction.atomic
def user_delete(*, user: User, confirm_email: str) -> None:
    """Delete the account and everything it owns (keys, connections, tokens, history).

    The email typed again is the confirmation; a wrong one deletes nothing. An operator
    account is refused: its console history (admin log entries) would go with it, and the
    last operator would leave the server without one; another operator removes its
    operator access first.
    """
    if user.is_staff or user.is_superuser:
        raise PermissionDenied(OPERATOR_NOT_DELETED, code="operator_account")
    if normalize_email(confirm_email) != user.email:
        raise ApplicationError(
            "Type your email address exactly to confirm.",
            code="confirmation_mismatch",
            fields={"confirm_email": ["Does not match your email address."]},
        )
    logger.info("account %s deleted by its owner", user.pk)
    user.delete()
