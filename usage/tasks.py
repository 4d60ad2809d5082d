"""Scheduled usage fetching: beat fans out one task per usable key of every provider with
a usage API, and at most ``USAGE_FETCH_CONCURRENCY`` fetches per provider run at once.

Tasks take ids, never secrets, and call one service each.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from smtplib import SMTPException

from celery import Task, shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q

from core.errors import ProviderUnavailable
from core.retries import retry_countdown as core_retry_countdown
from keys.models import ApiKey
from usage.models import Budget
from usage.providers import FETCHED
from usage.services.budgets import budgets_evaluate
from usage.services.fetching import usage_fetch_for_key

logger = logging.getLogger(__name__)

# A provider that is down or busy: retry after about 10-20, 20-40, … 160-320 s; the next
# beat run (every 15 minutes) starts again from the cursor after that.
FETCH_RETRIES = 5
RETRY_BACKOFF = 10.0
MAX_RETRY_AFTER = 900.0
# A slot is held at most this long: a worker killed mid-fetch frees it by expiring. Far
# longer than a fetch (a few requests of at most 30 s each).
SLOT_LEASE = 600
# A task finding every slot of its provider taken waits about this long and asks again,
# up to WAITS times (about as long as one beat interval); the next beat queues it anew.
WAIT = 5.0
WAITS = 180


def retry_countdown(*, retries: int, retry_after: float | None) -> float:
    """This task's wait before the next try (see :func:`core.retries.retry_countdown`)."""
    return core_retry_countdown(
        retries=retries,
        retry_after=retry_after,
        backoff=RETRY_BACKOFF,
        max_retry_after=MAX_RETRY_AFTER,
    )


@contextmanager
def fetch_slot(provider: str, *, limit: int, lease: int = SLOT_LEASE) -> Iterator[bool]:
    """Hold one of ``limit`` fetch slots of ``provider`` while the block runs; yields
    False (holding nothing) when all are taken.

    The slots are cache keys shared by every worker (Redis in production, the database
    cache otherwise), each claimed with an atomic ``add`` that fails while another holder
    has it and expires after ``lease`` seconds, so a killed worker cannot keep one. A
    holder frees only its own claim (a token), never one taken over after expiry."""
    token = uuid.uuid4().hex
    claimed = ""
    limit = max(limit, 1)  # a limit of 0 would stop every fetch for good
    # From a random slot on: tasks that find their first choice taken do not all queue
    # up on the next one.
    offset = random.randrange(limit)  # noqa: S311 - spreading load, not crypto
    for n in range(limit):
        key = f"usage:fetch-slot:{provider}:{(offset + n) % limit}"
        if cache.add(key, token, timeout=lease):
            claimed = key
            break
    try:
        yield bool(claimed)
    finally:
        if claimed and cache.get(claimed) == token:
            cache.delete(claimed)


@shared_task(name="usage.tasks.fetch_usage_all")
def fetch_usage_all() -> int:
    """Queue one fetch per key with usage to fetch (``usage.providers.FETCHED``) not known
    to be invalid, after commit. Returns how many were queued."""
    fetched = Q()
    for provider, kind in sorted(FETCHED):
        fetched |= Q(provider=provider, kind=kind)
    ids = list(
        ApiKey.objects.filter(fetched)
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
def fetch_usage_for_key(self: Task, api_key_id: int, waited: int = 0) -> str:
    """Fetch one key's usage, in one of its provider's slots. Idempotent, so a task run
    again after a lost worker loses and doubles nothing. A provider that is down or busy
    is retried, honouring its ``Retry-After``; a refused key is not (the service marks it
    invalid). With no free slot the task queues itself again shortly (``waited`` counts
    how often; it is not a failure and spends no retry)."""
    provider = ApiKey.objects.filter(pk=api_key_id).values_list("provider", flat=True).first()
    if provider is None:
        return "skipped"
    with fetch_slot(provider, limit=settings.USAGE_FETCH_CONCURRENCY) as slot:
        if not slot:
            if waited >= WAITS:
                logger.info("usage of key %s not fetched: no free slot", api_key_id)
                return "no_slot"
            countdown = WAIT + random.uniform(0, WAIT)  # noqa: S311 - jitter
            fetch_usage_for_key.apply_async(args=[api_key_id, waited + 1], countdown=countdown)
            return "waiting"
        try:
            result = usage_fetch_for_key(api_key_id=api_key_id)
        except ProviderUnavailable as exc:
            retries = self.request.retries
            if retries >= FETCH_RETRIES:
                logger.warning(
                    "usage of key %s not fetched after %d tries", api_key_id, retries + 1
                )
                return "error"
            countdown = retry_countdown(retries=retries, retry_after=exc.retry_after)
            raise self.retry(exc=exc, countdown=countdown) from None
    return result.status


# --- Budgets -------------------------------------------------------------------------------

BUDGET_RETRIES = 3


@shared_task(name="usage.tasks.evaluate_budgets")
def evaluate_budgets() -> int:
    """Queue one budget evaluation per owner with a budget, after commit. Returns how
    many were queued."""
    owner_ids = list(
        Budget.objects.order_by("owner_id").values_list("owner_id", flat=True).distinct()
    )
    for owner_id in owner_ids:
        transaction.on_commit(partial(evaluate_budgets_for_owner.apply_async, args=[owner_id]))
    return len(owner_ids)


@shared_task(
    bind=True,
    name="usage.tasks.evaluate_budgets_for_owner",
    acks_late=True,
    max_retries=BUDGET_RETRIES,
)
def evaluate_budgets_for_owner(self: Task, owner_id: int) -> int:
    """Email one owner about budgets at 80 % or 100 % this month, once each (safe to run
    twice, or on two workers at once). A mail server that fails is tried again later;
    the alert it could not send was rolled back, so it is sent then."""
    try:
        return budgets_evaluate(owner_id=owner_id)
    except (SMTPException, OSError) as exc:
        countdown = retry_countdown(retries=self.request.retries, retry_after=None)
        raise self.retry(exc=exc, countdown=countdown) from None
