"""Provider access tokens: refreshed under a row lock before they expire, and a 409
asking to reconnect when a stored token cannot be decrypted."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import security_event_record
from connections.models import (
    Connection,
)
from connections.providers import InvalidGrant, provider_module
from connections.registry import service_get
from connections.services.common import SecurityKind
from core.crypto import DecryptionError
from core.errors import ApplicationError, ConnectionNeedsReauth, NotFound
from core.fields import decrypt_field
from core.prepared import PreparedQuery, first_row

logger = logging.getLogger(__name__)

REFRESH_MARGIN = timedelta(minutes=5)


def connection_refresh(*, connection_id: int, within: timedelta = REFRESH_MARGIN) -> Connection:
    """Refresh a connection's access token if it expires within ``within``.

    The row is locked for the whole exchange, so two workers never spend the same
    rotating refresh token: the second one waits, then finds a fresh token and returns.
    """
    needs_reauth = unreadable = False
    with transaction.atomic():
        connection = Connection.objects.select_for_update().get(pk=connection_id)
        now = timezone.now()
        if connection.status == Connection.Status.NEEDS_REAUTH:
            needs_reauth = True
        elif connection.expires_at is None or connection.expires_at > now + within:
            return connection
        else:
            spec = service_get(connection.service)
            try:
                secret = decrypt_field(connection, "refresh_token")
                if not secret:
                    raise InvalidGrant("No refresh token stored.")
                tokens = provider_module(spec.provider).refresh(refresh_token=secret)
            except DecryptionError:
                unreadable = True
            except InvalidGrant:
                connection.status = Connection.Status.NEEDS_REAUTH
                connection.last_error = f"{spec.label} refused the refresh token."
                connection.save(update_fields=["status", "last_error"])
                security_event_record(
                    user=connection.user_id,
                    kind=SecurityKind.NEEDS_REAUTH,
                    detail={"service": spec.name, "service_label": spec.label},
                )
                needs_reauth = True
            else:
                connection.access_token = tokens.access_token
                if tokens.refresh_token:
                    connection.refresh_token = tokens.refresh_token
                connection.expires_at = (
                    now + timedelta(seconds=tokens.expires_in) if tokens.expires_in else None
                )
                connection.last_refreshed_at = now
                connection.last_error = ""
                connection.save()
    if unreadable:
        raise _unreadable(connection)
    if needs_reauth:
        raise ConnectionNeedsReauth(
            f"The {connection.service} connection needs re-authorisation: connect it again."
        )
    return connection


class ConnectionUnreadable(ApplicationError):
    """A stored provider token no key in ENCRYPTION_KEYS opens (as the vault's keys)."""

    status = 409
    code = "connection_unreadable"


def _unreadable(connection: Connection) -> ConnectionUnreadable:
    """Audit an undecryptable token (call outside any transaction that will roll back)."""
    logger.error("connection %s token cannot be decrypted with ENCRYPTION_KEYS", connection.pk)
    label = service_get(connection.service).label
    security_event_record(
        user=connection.user_id,
        kind=SecurityKind.CONNECTION_UNREADABLE,
        detail={"service": connection.service, "service_label": label},
    )
    return ConnectionUnreadable(
        f"The stored {label} token cannot be decrypted: connect {label} again, or ask "
        "the operator to check ENCRYPTION_KEYS."
    )


# Read on every assistant run: compiled once (core.prepared).
_CONNECTION: PreparedQuery[Connection] = PreparedQuery(
    lambda user_id, service: first_row(Connection.objects.filter(user_id=user_id, service=service))
)


def connection_access_token(*, user: User, service: str) -> str:
    """A usable access token for ``user``'s connection (what the assistant calls)."""
    spec = service_get(service)
    connection = _CONNECTION.first(user_id=user.pk, service=spec.name)
    if connection is None:
        raise NotFound(f"{spec.label} is not connected.")
    if connection.status == Connection.Status.NEEDS_REAUTH:
        raise ConnectionNeedsReauth(f"{spec.label} needs re-authorisation: connect it again.")
    if (
        connection.expires_at is not None
        and connection.expires_at <= timezone.now() + REFRESH_MARGIN
    ):
        connection = connection_refresh(connection_id=connection.pk)
    try:
        token = decrypt_field(connection, "access_token")
    except DecryptionError:
        raise _unreadable(connection) from None
    if not token:
        raise ConnectionNeedsReauth(f"{spec.label} has no access token: connect it again.")
    return token
