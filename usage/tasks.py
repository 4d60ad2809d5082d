"""Scheduled usage fetching: beat fans out one task per usable admin key.

Tasks take ids, never secrets, and call one service each.
"""

from __future__ import annotations

import logging
from functools import partial

from celery import Task, shared_task
from django.db import transaction

from core.errors import ProviderUnavailable
from core.retries import retry_countdown as core_retry_countdown
from keys.models import ApiKey
from usage.services.fetching import usage_fetch_for_key

logger = logging.getLogger(__name__)

# A provider that is down or busy: retry after about 10-20, 20-40, … 160-320 s; the next
# beat run (every 15 minutes) starts again from the cursor after that.
FETCH_RETRIES = 5
RETRY_BACKOFF = 10.0
MAX_RETRY_AFTER = 900.0


def retry_countdown(*, retries: int, retry_after: float | None) -> float:
    """This task's wait before the next try (see :func:`core.retries.retry_countdown`)."""
    return core_retry_countdown(
        retries=retries,
        retry_after=retry_after,
        backoff=RETRY_BACKOFF,
        max_retry_after=MAX_RETRY_AFTER,
    )


@shared_task(name="usage.tasks.fetch_usage_all")
def fetch_usage_all() -> int:
    """Queue one fetch per OpenAI admin key not known to be invalid, after commit.
    Returns how many were queued."""
    ids = list(
        ApiKey.objects.filter(provider="openai", kind=ApiKey.Kind.ADMIN)
        .exclude(status=ApiKey.Status.INVALID)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for key_id in ids:
        transaction.on_commit(partial(fetch_usage_for_key.apply_async, args=[key_id]))
    return len(ids)


@shared_task(
    bind=True, name="usage.tasks.fetch_usage_for_key", acks_late=True, max_retries=FETCH_RETRIES
)
def fetch_usage_for_key(self: Task, api_key_id: int) -> str:
    """Fetch one key's usage. Idempotent, so a task run again after a lost worker loses
    and doubles nothing. A provider that is down or busy is retried, honouring its
    ``Retry-After``; a refused key is not (the service marks it invalid)."""
    try:
        result = usage_fetch_for_key(api_key_id=api_key_id)
    except ProviderUnavailable as exc:
        retries = self.request.retries
        if retries >= FETCH_RETRIES:
            logger.warning("usage of key %s not fetched after %d tries", api_key_id, retries + 1)
            return "error"
        countdown = retry_countdown(retries=retries, retry_after=exc.retry_after)
        raise self.retry(exc=exc, countdown=countdown) from None
    return result.status
