"""The scheduled fetch of one vault key's usage: window from its cursor, the provider's
fetcher (``usage.providers.fetcher_for``), idempotent upsert, and where the fetch stands
for the owner to see."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts.models import User
from core.errors import ApplicationError, ProviderUnavailable
from keys.models import ApiKey, KeyAuditEvent
from keys.services import Origin, api_key_revalidate
from keys.services.common import open_key
from usage.models import ProviderAccount, Source, UsageBucket, UsageFetchState
from usage.providers import AccountSpend, FetchWindow, KeyRejected, fetcher_for
from usage.providers.openrouter import KEY_SPEND_PREFIX
from usage.providers.openrouter import PROVIDER as OPENROUTER
from usage.services.attribution import usage_rows_attributed
from usage.services.buckets import usage_buckets_upsert
from usage.services.rollup import owner_lock, rollup_rewrite

# Providers report late: every fetch reads these last hours again (upserts make it free).
REREAD = timedelta(hours=48)
# A key's first fetch reaches this far back; older history is the backfill command's job.
FIRST_FETCH = timedelta(days=2)
SCHEDULE = Origin(KeyAuditEvent.Source.SCHEDULE)
Status = UsageFetchState.Status


@dataclass(frozen=True)
class FetchResult:
    """What one fetch did: a ``UsageFetchState.Status`` value, or ``"skipped"`` for a key
    that has no usage to fetch (deleted, or of a provider or kind without a usage API)."""

    status: str
    buckets: int = 0
    detail: str = ""


def _window(
    state: UsageFetchState | None, now: datetime, since: datetime | None
) -> tuple[datetime, datetime]:
    if since is not None:
        return min(since, now), now
    if state is None or state.cursor is None:
        return now - FIRST_FETCH, now
    return min(state.cursor, now) - REREAD, now


def _record(
    api_key: ApiKey,
    state: UsageFetchState | None,
    *,
    status: str,
    now: datetime,
    error: str = "",
    cursor: datetime | None,
) -> None:
    """Write where the fetch stands (``state``: as read when the fetch began, ``None``
    for the key's first). ``error`` is Kay's own words (our exceptions never quote a
    provider's body or a key)."""
    fields: dict[str, Any] = {
        "last_fetched_at": now,
        "last_status": status,
        "last_error": error[:300],
    }
    if cursor is not None:
        fields["cursor"] = cursor
    if state is not None:
        UsageFetchState.objects.filter(pk=state.pk).update(**fields, updated_at=now)
        return
    # One statement whether or not a concurrent first fetch created the row meanwhile.
    UsageFetchState.objects.bulk_create(
        [UsageFetchState(api_key=api_key, **fields, updated_at=now)],
        update_conflicts=True,
        unique_fields=["api_key"],
        update_fields=[*fields, "updated_at"],
    )


def _store_account(api_key: ApiKey, account: AccountSpend) -> None:
    """The key's provider-reported spend and limit, replacing the previous figures."""
    ProviderAccount.objects.update_or_create(
        api_key=api_key,
        defaults={
            "limit_micros": account.limit_micros,
            "remaining_micros": account.remaining_micros,
            "limit_reset": account.limit_reset,
            "spent_today_micros": account.spent_today_micros,
            "spent_month_micros": account.spent_month_micros,
        },
    )


def _drop_key_spend(*, owner: User, days: Collection[datetime]) -> None:
    """Delete the owner's OpenRouter key-spend buckets of ``days``: the account's activity
    per model now stands for those days (see ``usage.providers.openrouter``)."""
    with transaction.atomic():
        owner_lock(owner.pk)
        deleted, _ = UsageBucket.objects.filter(
            owner=owner,
            source=Source.OPENROUTER,
            provider=OPENROUTER,
            model="",
            granularity="day",
            external_key_id__startswith=KEY_SPEND_PREFIX,
            bucket_start__in=list(days),
        ).delete()
        if deleted:
            rollup_rewrite(
                owner_id=owner.pk,
                source=Source.OPENROUTER,
                days={day.date() for day in days},
                pairs={(OPENROUTER, "")},
            )


@sensitive_variables("secret")
def usage_fetch_for_key(*, api_key_id: int, since: datetime | None = None) -> FetchResult:
    """Fetch a vault key's usage since its cursor (less the 48 h re-read) and store it;
    idempotent, so running it twice changes nothing. Which keys have usage, and how it is
    read, is ``usage.providers.fetcher_for``'s: OpenAI and Anthropic admin keys (their
    organisation's usage), any OpenRouter key (its own spend; a management key also the
    account's activity per model).

    ``since`` (a backfill) reads from there instead of the cursor; the cursor still only
    moves forward.

    A key the provider refuses is marked invalid in the vault (through the keys app's
    revalidation, which asks the provider once more and audits the change). A provider
    that is down or busy raises ``ProviderUnavailable`` for the task to retry; any other
    failure is recorded on the key's fetch state."""
    # The key, its owner and its fetch state (if it was ever fetched) in one query.
    api_key = (
        ApiKey.objects.select_related("owner", "usage_fetch_state").filter(pk=api_key_id).first()
    )
    if api_key is None:
        return FetchResult("skipped", detail="The key no longer exists.")
    fetcher = fetcher_for(api_key.provider, api_key.kind)
    if fetcher is None:
        return FetchResult("skipped", detail="This kind of key has no usage to fetch.")
    try:
        state: UsageFetchState | None = api_key.usage_fetch_state
    except UsageFetchState.DoesNotExist:
        state = None  # created by _record
    now = timezone.now()
    start, end = _window(state, now, since)
    try:
        secret = open_key(api_key)
        fetched = fetcher.fetch(FetchWindow(secret, start, end, api_key.pk))
    except KeyRejected as exc:
        api_key_revalidate(api_key=api_key, origin=SCHEDULE)
        _record(api_key, state, status=Status.INVALID_KEY, now=now, error=exc.message, cursor=None)
        return FetchResult(Status.INVALID_KEY, detail=exc.message)
    except ProviderUnavailable as exc:
        _record(api_key, state, status=Status.ERROR, now=now, error=exc.message, cursor=None)
        raise
    except ApplicationError as exc:  # an answer we cannot use, or a key we cannot decrypt
        _record(api_key, state, status=Status.ERROR, now=now, error=exc.message, cursor=None)
        return FetchResult(Status.ERROR, detail=exc.message)
    # Before the upsert, which stores each row's stored key (best effort, never fails).
    rows = usage_rows_attributed(admin_key=api_key, secret=secret, rows=fetched.rows)
    with transaction.atomic():
        written = usage_buckets_upsert(owner=api_key.owner, source=fetcher.source, rows=rows)
        if fetched.supersedes_key_spend:
            _drop_key_spend(owner=api_key.owner, days=fetched.supersedes_key_spend)
        if fetched.account is not None:
            _store_account(api_key, fetched.account)
        # The cursor only moves forward: a slow worker finishing late must not rewind it.
        # (In the same transaction: one commit, and the cursor moves only with the usage.)
        cursor = max(state.cursor, end) if state is not None and state.cursor is not None else end
        _record(api_key, state, status=Status.OK, now=now, cursor=cursor)
    if fetched.admin and api_key.kind != ApiKey.Kind.ADMIN:
        # An OpenRouter management key stored as an API key (OpenRouter could not be asked
        # when it was saved): keys.access would hand it out for model calls until the
        # nightly revalidation. The keys app asks the provider again and corrects the kind.
        api_key_revalidate(api_key=api_key, origin=SCHEDULE)
    return FetchResult(Status.OK, buckets=written)
