"""Beat tasks for connections: keep provider tokens fresh, purge expired sign-in records.

Tasks take ids, never tokens, and call one service each.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from accounts.devices import device_authorizations_purge
from accounts.tokens import auth_records_purge
from connections.models import Connection
from connections.services import connection_refresh, oauth_records_purge
from core.errors import ApplicationError

logger = logging.getLogger(__name__)

# Beat runs every 10 minutes; refreshing what expires within 15 leaves a margin.
BEAT_WINDOW = timedelta(minutes=15)


@shared_task(name="connections.tasks.refresh_expiring_connections")
def refresh_expiring_connections() -> int:
    """Queue a refresh for every active connection whose access token expires soon."""
    ids = list(
        Connection.objects.filter(
            status=Connection.Status.ACTIVE,
            expires_at__lte=timezone.now() + BEAT_WINDOW,
            refresh_token__isnull=False,
        ).values_list("pk", flat=True)
    )
    for connection_id in ids:
        transaction.on_commit(partial(refresh_connection.delay, connection_id))
    return len(ids)


@shared_task(
    name="connections.tasks.refresh_connection",
    autoretry_for=(ConnectionError, TimeoutError),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=3,
)
def refresh_connection(connection_id: int) -> None:
    """Refresh one connection under its row lock (a no-op if another worker just did)."""
    try:
        connection_refresh(connection_id=connection_id, within=BEAT_WINDOW)
    except Connection.DoesNotExist:
        return  # disconnected meanwhile
    except ApplicationError as exc:
        logger.warning("Connection %s not refreshed: %s", connection_id, exc.code)


@shared_task(name="connections.tasks.purge_expired_auth_records")
def purge_expired_auth_records() -> dict[str, int]:
    """Delete expired OAuth states, never-linked Kay sessions, ended CLI sessions and
    expired device codes and personal tokens."""
    counts = oauth_records_purge()
    counts |= auth_records_purge()
    counts["device_authorizations"] = device_authorizations_purge()
    return counts
