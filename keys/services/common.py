"""What every write shares: where it came from, masking, and the audit row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accounts.models import User
from keys.models import ApiKey, KeyAuditEvent

Source = KeyAuditEvent.Source
Action = KeyAuditEvent.Action
UNSET: Any = object()


@dataclass(frozen=True)
class Origin:
    """Where a write comes from, for the audit trail."""

    source: str
    ip: str | None = None


def mask_secret(secret: str) -> str:
    """First 4 + last 4 characters (``sk-p…Wx9z``); short secrets show less."""
    if len(secret) >= 12:
        return f"{secret[:4]}…{secret[-4:]}"
    if len(secret) >= 6:
        return f"{secret[:2]}…{secret[-2:]}"
    return "…"


def key_label(api_key: ApiKey) -> str:
    return f"{api_key.name} ({api_key.provider}, {api_key.masked_key})"


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
    return KeyAuditEvent.objects.create(
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
