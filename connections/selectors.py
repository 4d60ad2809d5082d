"""Reads for connections, always scoped to one owner."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connections.models import (
    AccessibleResource,
    Connection,
    KaySession,
    OAuthState,
)
from connections.providers import credentials_configured
from connections.registry import SERVICES, ServiceSpec, service_get
from core.hashing import token_hash
from core.prepared import PreparedQuery


@dataclass
class ServiceStatus:
    spec: ServiceSpec
    connection: Connection | None
    resources: list[AccessibleResource] = field(default_factory=list)
    # Whether this server has OAuth credentials for the service (else nobody can connect).
    available: bool = True

    @property
    def state(self) -> str:
        if self.connection is None:
            return "not_connected"
        return (
            "needs_reauth"
            if self.connection.status == Connection.Status.NEEDS_REAUTH
            else "connected"
        )


def connections_for_session(*, session: KaySession) -> dict[str, bool]:
    """Seed 003's ``{"jira": true, ...}`` for every registered service."""
    connected: set[str] = set()
    if session.user_id is not None:
        connected = set(
            Connection.objects.filter(
                user_id=session.user_id, status=Connection.Status.ACTIVE
            ).values_list("service", flat=True)
        )
    return {name: name in connected for name in SERVICES}


def oauth_state_started_by(*, state: str, user: Any) -> bool:
    """Whether ``user`` started this state from their dashboard (to send them back there)."""
    if not getattr(user, "is_authenticated", False):
        return False
    return OAuthState.objects.filter(
        state_hash=token_hash(state or ""), origin=OAuthState.Origin.DASHBOARD, user=user
    ).exists()


def service_statuses_for(*, user: Any) -> list[ServiceStatus]:
    """Every registered service with the user's connection and sites (two queries)."""
    connections = {
        c.service: c for c in Connection.objects.filter(user=user).prefetch_related("resources")
    }
    return [
        ServiceStatus(
            spec=spec,
            connection=connections.get(name),
            resources=list(connections[name].resources.all()) if name in connections else [],
            available=credentials_configured(spec.provider.upper()),
        )
        for name, spec in SERVICES.items()
    ]


# Read before each of the assistant's tool calls: compiled once (core.prepared).
_STAMPS: PreparedQuery[tuple[Any, ...]] = PreparedQuery(
    lambda user_id: (
        Connection.objects.filter(user_id=user_id)
        .order_by("pk")
        .values_list("pk", "service", "status", "connected_at", "last_refreshed_at", "expires_at")
    )
)
_RESOURCES: PreparedQuery[AccessibleResource] = PreparedQuery(
    lambda user_id: AccessibleResource.objects.filter(connection__user_id=user_id).order_by(
        "name", "pk"
    )
)


@dataclass(frozen=True)
class ConnectionStamp:
    """What changes whenever a connection's token, or the user's sites, may have: a
    refresh or reconnection of this connection or of any other of the user's (the sites
    come from all of them). A holder of what it read earlier may go on while it is the
    same."""

    connection_id: int
    expires_at: datetime | None
    connections: tuple[tuple[Any, ...], ...]  # every connection's id, status and times


def connection_stamp(*, user: Any, service: str) -> ConnectionStamp | None:
    """``user``'s usable connection to ``service`` as it stands now, with the state of
    their other connections (one query); None when it is gone or needs re-authorising."""
    rows = tuple(_STAMPS.all(user_id=getattr(user, "pk", user)))
    name = service_get(service).name
    for pk, row_service, status, _connected, _refreshed, expires_at in rows:
        if row_service == name and status != Connection.Status.NEEDS_REAUTH:
            return ConnectionStamp(pk, expires_at, rows)
    return None


def connection_usable(*, user: Any, service: str) -> bool:
    """Whether ``user``'s connection to ``service`` is still there and usable (one query):
    what a holder of a token read earlier checks before it acts with it again."""
    return connection_stamp(user=user, service=service) is not None


def accessible_resources_for(*, user: Any) -> list[dict[str, Any]]:
    """The user's Atlassian sites across connections, once each, in the API's shape."""
    seen: dict[str, dict[str, Any]] = {}
    rows = _RESOURCES.all(user_id=getattr(user, "pk", user))
    for row in rows:
        entry = seen.setdefault(
            row.resource_id,
            {
                "id": row.resource_id,
                "name": row.name,
                "url": row.url,
                "scopes": [],
                "avatarUrl": row.avatar_url,
            },
        )
        entry["scopes"] = sorted(set(entry["scopes"]) | set(row.scopes))
    return list(seen.values())
