"""What every write shares: where it came from, masking, opening a stored key, and the
audit row."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.views.decorators.debug import sensitive_variables
from rest_framework.request import Request

from accounts.models import User
from core.clientip import client_ip
from core.crypto import DecryptionError
from core.errors import ApplicationError
from core.prepared_insert import PreparedInsert
from keys.models import ApiKey, KeyAuditEvent

Source = KeyAuditEvent.Source
Action = KeyAuditEvent.Action
UNSET: Any = object()
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Origin:
    """Where a write comes from, for the audit trail."""

    source: str
    ip: str | None = None

    @classmethod
    def of(cls, request: HttpRequest | Request, source: str) -> Origin:
        """A write made through ``request`` (a page or the API): its client address."""
        return cls(source=source, ip=client_ip(request) or None)


def mask_secret(secret: str) -> str:
    """First 4 + last 4 characters (``sk-p…Wx9z``). A shorter secret (only an
    OpenAI-compatible server's token can be one) shows at most a third of itself, and one
    under 6 characters shows as one dot per character: never a bare "…"."""
    shown = min(4, len(secret) // 6)
    if not shown:
        return "•" * len(secret)
    return f"{secret[:shown]}…{secret[-shown:]}"


class UnreadableKey(ApplicationError):
    """A stored key no key in ENCRYPTION_KEYS opens (an operator problem, never a user's)."""

    status = 409
    code = "key_unreadable"


@sensitive_variables()
def open_key(api_key: ApiKey) -> str:
    """The plaintext of a stored key, or ``UnreadableKey`` (no detail about why)."""
    try:
        return api_key.get_secret()
    except DecryptionError:
        logger.error("stored key %s cannot be decrypted with ENCRYPTION_KEYS", api_key.pk)
        raise UnreadableKey(
            f"The stored {api_key.provider} key “{api_key.name}” cannot be decrypted. "
            "Rotate it (paste it again) or ask the operator to check ENCRYPTION_KEYS."
        ) from None


def key_label(api_key: ApiKey) -> str:
    return f"{api_key.name} ({api_key.provider}, {api_key.masked_key})"


# Every use of a stored key writes one: its INSERT compiled once (core.prepared).
_EVENTS: PreparedInsert[KeyAuditEvent] = PreparedInsert(KeyAuditEvent)


def audit(
    *,
    action: str,
    origin: Origin,
    actor: User | None = None,
    api_key: ApiKey | None = None,
    detail: dict[str, Any] | None = None,
    owner: User | None = None,
    owner_id: Any = None,
) -> KeyAuditEvent:
    """Record one audit event. ``detail`` must never hold a secret."""
    return _EVENTS.create(
        owner_id=owner.pk if owner is not None else owner_id,
        api_key=api_key,
        key_label=key_label(api_key) if api_key else "",
        actor=actor,
        action=action,
        source=origin.source,
        ip_address=origin.ip,
        detail=detail or {},
    )


def by_user(acting_user: User, action: str, origin: Origin, **kwargs: Any) -> KeyAuditEvent:
    """An event the user caused on their own vault."""
    return audit(owner=acting_user, actor=acting_user, action=action, origin=origin, **kwargs)
