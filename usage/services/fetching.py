"""The scheduled fetch of one vault key's organisation usage: window from its cursor,
provider call, idempotent upsert, and where the fetch stands for the owner to see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from core.errors import ApplicationError, ProviderUnavailable
from keys.models import ApiKey, KeyAuditEvent
from keys.services import Origin, api_key_revalidate
from keys.services.common import open_key
from usage.models import Source, UsageFetchState
from usage.providers import KeyRejected
from usage.providers.openai import fetch_openai_usage
from usage.services.attribution import usage_rows_attributed
from usage.services.buckets import usage_buckets_upsert

# Providers report late: every fetch reads these last hours again (upserts make it free).
REREAD = timedelta(hours=48)
# A key's first fetch reaches this far back; older history is the backfill command's job.
FIRST_FETCH = timedelta(days=2)
SCHEDULE = Origin(KeyAuditEvent.Source.SCHEDULE)
Status = UsageFetchState.Status


@dataclass(frozen=True)
class FetchResult:
    """What one fetch did: a ``UsageFetchState.Status`` value, or ``"skipped"`` for a key
    that has no usage to fetch (deleted, or not an OpenAI admin key)."""

    status: str
    buckets: int = 0
    detail: str = ""


def _window(
    state: UsageFetchState, now: datetime, since: datetime | None
) -> tuple[datetime, datetime]:
    if since is not None:
        return min(since, now), now
    if state.cursor is None:
        return now - FIRST_FETCH, now
    return min(state.cursor, now) - REREAD, now


def _record(
    state: UsageFetchState, *, status: str, now: datetime, error: str = "", cursor: datetime | None
) -> None:
    """Write where the fetch stands. ``error`` is Kay's own words (our exceptions never
    quote a provider's body or a key)."""
    fields = {"last_fetched_at": now, "last_status": status, "last_error": error[:300]}
    if cursor is not None:
        fields["cursor"] = cursor
    UsageFetchState.objects.filter(pk=state.pk).update(**fields, updated_at=now)


@sensitive_variables("secret")
def usage_fetch_for_key(*, api_key_id: int, since: datetime | None = None) -> FetchResult:
    """Fetch an OpenAI admin key's hourly organisation usage since its cursor (less the
    48 h re-read) and store it; idempotent, so running it twice changes nothing.

    ``since`` (a backfill) reads from there instead of the cursor; the cursor still only
    moves forward.

    A key the provider refuses is marked invalid in the vault (through the keys app's
    revalidation, which asks the provider once more and audits the change). A provider
    that is down or busy raises ``ProviderUnavailable`` for the task to retry; any other
    failure is recorded on the key's fetch state."""
    api_key = ApiKey.objects.select_related("owner").filter(pk=api_key_id).first()
    if api_key is None:
        return FetchResult("skipped", detail="The key no longer exists.")
    if api_key.provider != "openai" or api_key.kind != ApiKey.Kind.ADMIN:
        return FetchResult("skipped", detail="Only OpenAI admin keys have usage to fetch.")
    state, _ = UsageFetchState.objects.get_or_create(api_key=api_key)
    now = timezone.now()
    start, end = _window(state, now, since)
    try:
        secret = open_key(api_key)
        rows = fetch_openai_usage(admin_key=secret, start=start, end=end, bucket_width="1h")
    except KeyRejected as exc:
        api_key_revalidate(api_key=api_key, origin=SCHEDULE)
        _record(state, status=Status.INVALID_KEY, now=now, error=exc.message, cursor=None)
        return FetchResult(Status.INVALID_KEY, detail=exc.message)
    except ProviderUnavailable as exc:
        _record(state, status=Status.ERROR, now=now, error=exc.message, cursor=None)
        raise
    except ApplicationError as exc:  # an answer we cannot use, or a key we cannot decrypt
        _record(state, status=Status.ERROR, now=now, error=exc.message, cursor=None)
        return FetchResult(Status.ERROR, detail=exc.message)
    # Before the upsert: it stores each row's attribution (best effort, never fails).
    rows = usage_rows_attributed(admin_key=api_key, secret=secret, rows=rows)
    written = usage_buckets_upsert(owner=api_key.owner, source=Source.OPENAI_ADMIN, rows=rows)
    # The cursor only moves forward: a slow worker finishing late must not rewind it.
    cursor = max(state.cursor, end) if state.cursor is not None else end
    _record(state, status=Status.OK, now=now, cursor=cursor)
    return FetchResult(Status.OK, buckets=written)
