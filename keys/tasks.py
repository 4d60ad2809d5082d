"""Nightly re-validation of stored keys. Tasks take ids, never secrets."""

from __future__ import annotations

import logging
import random
from functools import partial

from celery import shared_task
from django.db import transaction

from core.errors import ApplicationError
from keys.models import ApiKey, KeyAuditEvent
from keys.services import Origin, api_key_revalidate

logger = logging.getLogger(__name__)
SCHEDULE = Origin(KeyAuditEvent.Source.SCHEDULE)


@shared_task(name="keys.tasks.revalidate_keys")
def revalidate_keys() -> int:
    """Queue one check per stored key (spread over ten minutes so providers are not hit
    in a burst). Returns how many were queued."""
    ids = list(ApiKey.objects.order_by("pk").values_list("pk", flat=True))
    for key_id in ids:
        countdown = random.randint(0, 600)  # noqa: S311 - spreading load, not security
        transaction.on_commit(
            partial(revalidate_key.apply_async, args=[key_id], countdown=countdown)
        )
    return len(ids)


@shared_task(name="keys.tasks.revalidate_key")
def revalidate_key(key_id: int) -> str | None:
    """Check one key with its provider; a rejected key is marked invalid (the dashboard
    shows it). A key deleted in the meantime is skipped. No retries: a provider that
    cannot be reached leaves the key's status as it was, and tomorrow's run asks again."""
    api_key = ApiKey.objects.filter(pk=key_id).first()
    if api_key is None:
        return None
    try:
        check = api_key_revalidate(api_key=api_key, origin=SCHEDULE)
    except ApplicationError as exc:  # e.g. unreadable: nothing a retry can fix
        logger.warning("key %s not revalidated: %s", key_id, exc.code)
        return exc.code
    if check.status == "invalid":
        logger.info(
            "key %s of user %s was rejected by %s", key_id, api_key.owner_id, api_key.provider
        )
    return check.status
