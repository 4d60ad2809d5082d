"""Beat tasks for connections: keep provider tokens fresh, purge expired sign-in records.

Tasks take ids, never tokens, and call one service each.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial

from celery import Task, shared_task
from django.db import transaction
from django.utils import timezone

from accounts.devices import device_authorizations_purge
from accounts.tokens import auth_records_purge
from connections.models import Connection
from connections.services import connection_refresh, oauth_records_purge
from core.errors import ApplicationError, ProviderUnavailable
from core.retries import retry_countdown as core_retry_countdown

logger = logging.getLogger(__name__)

# Beat runs every 10 minutes; refreshing what expires within 15 leaves a margin.
BEAT_WINDOW = timedelta(minutes=15)
# A provider that is down or busy: retry after about 10-20, 20-40, 40-80 and 80-160 s, so
# the tries end within the beat window; the next beat run tries again after that.
REFRESH_RETRIES = 4
RETRY_BACKOFF = 10.0
MAX_RETRY_AFTER = 300.0


def retry_countdown(*, retries: int, retry_after: float | None) -> float:
    """This task's wait before the next try (see :func:`core.retries.retry_countdown`)."""
    return core_retry_countdown(
        retries=retries,
        retry_after=retry_after,
        backoff=RETRY_BACKOFF,
        max_retry_after=MAX_RETRY_AFTER,
    )


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


@shared_task(bind=True, name="connections.tasks.refresh_connection", max_retries=REFRESH_RETRIES)
def refresh_connection(self: Task, connection_id: int) -> None:
    """Refresh one connection under its row lock (a no-op if another worker just did).

    A provider that is down or busy is retried later; a refused grant is not (the
    connection is marked as needing re-authorisation)."""
    try:
        connection_refresh(connection_id=connection_id, within=BEAT_WINDOW)
    except Connection.DoesNotExist:
        return  # disconnected meanwhile
    except ProviderUnavailable as exc:
        retries = self.request.retries
        if retries >= REFRESH_RETRIES:
            logger.warning(
                "Connection %s not refreshed after %d tries: %s", connection_id, retries + 1, exc
            )
            return
        countdown = retry_countdown(retries=retries, retry_after=exc.retry_after)
        raise self.retry(exc=exc, countdown=countdown) from None
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
