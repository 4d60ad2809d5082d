"""Writes for connections, one module per responsibility: starting OAuth (``connect``),
finishing it and the CLI's confirmation (``callback``), what the CLI polls and
housekeeping (``cli``), and keeping provider access tokens fresh (``tokens``).

Views, APIs and tasks import from here."""

from connections.services.callback import (
    CallbackOutcome,
    LinkPreview,
    oauth_callback_complete,
    oauth_link_confirm,
    oauth_link_preview,
)
from connections.services.cli import (
    AuthStatus,
    auth_status_collect,
    connection_disconnect,
    oauth_records_purge,
)
from connections.services.common import STATE_LIFETIME, kay_session_find
from connections.services.connect import ConnectStart, connection_start
from connections.services.tokens import (
    ConnectionUnreadable,
    connection_access_token,
    connection_refresh,
)

__all__ = [
    "STATE_LIFETIME",
    "AuthStatus",
    "CallbackOutcome",
    "ConnectStart",
    "ConnectionUnreadable",
    "LinkPreview",
    "auth_status_collect",
    "connection_access_token",
    "connection_disconnect",
    "connection_refresh",
    "connection_start",
    "kay_session_find",
    "oauth_callback_complete",
    "oauth_link_confirm",
    "oauth_link_preview",
    "oauth_records_purge",
]
