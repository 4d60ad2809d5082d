"""Metering: every LLM call Kay itself makes, recorded once as usage of the key that paid."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from accounts.models import User
from core.prepared import PreparedQuery, PreparedUpdate, first_row
from core.prepared_insert import PreparedInsert
from keys.models import ApiKey
from usage.models import CostSource, Granularity, MeteredLlmCall, Source, UsageBucket, UsageDaily
from usage.records import BucketRow
from usage.services.pricing import Pair, Price, catalog_prices
from usage.services.rollup import owner_lock, rollup_rewrite


@dataclass(frozen=True)
class MeteredCall:
    """What one call was recorded as: billing charges ``cost_micros`` from it and refers
    to ``record_id`` (the ``MeteredLlmCall``)."""

    record_id: int
    bucket_id: int | None
    cost_micros: int
    cost_source: str
    priced: bool  # False: the catalog had no price for the model, so it cost 0
    owner_id: int | None = None  # whose call it is; None: not known to the caller


@dataclass(frozen=True)
class LlmCall:
    """One LLM call to record: its idempotency key, the model and the provider's counts
    (``input_tokens`` including ``cached_tokens``); ``at`` places it in its hour bucket
    (now by default)."""

    call_id: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    at: datetime | None = None


def usage_record_llm_call(
    *,
    owner: User,
    call_id: str,
    api_key: ApiKey | None = None,
    provider: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int = 0,
    at: datetime | None = None,
    prices: Mapping[Pair, Price | None] | None = None,
) -> MeteredCall:
    """Record one LLM call Kay made for ``owner``: the one way other apps write usage
    (see :func:`usage_record_llm_calls`, which records several at once)."""
    call = LlmCall(
        call_id=call_id,
        provider=provider,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_tokens=cached_tokens,
        at=at,
    )
    return usage_record_llm_calls(owner=owner, api_key=api_key, calls=[call], prices=prices)[0]


@dataclass
class _Group:
    """The calls of one hour bucket, and what they add to it."""

    row: BucketRow
    figures: dict[str, int]


def usage_record_llm_calls(
    *,
    owner: User,
    calls: Sequence[LlmCall],
    api_key: ApiKey | None = None,
    prices: Mapping[Pair, Price | None] | None = None,
) -> list[MeteredCall]:
    """Record LLM calls Kay made for ``owner`` (in one transaction, one write per hour
    bucket they fall in), each as :class:`MeteredCall`, in the order given.

    ``call_id`` is the caller's idempotency key: recording the same ``call_id`` again
    returns the first record and adds nothing (the owner's usage lock makes a concurrent
    second recording wait, then find the first).

    ``api_key`` is the owner's stored key that paid for the calls (None: the server's
    key, billed to the owner's credits). The cost comes from the model catalog's prices
    (``prices``: ones the caller looked up already, as :func:`catalog_prices` returned
    them). Added to the hour buckets with atomic increments, so calls recorded at the same
    moment all count; the daily rollup follows."""
    if api_key is not None and api_key.owner_id != owner.pk:
        raise ValueError("a call is recorded against its owner's own key only")
    if not calls:
        return []
    ids = [call.call_id for call in calls]
    if len(set(ids)) != len(ids):
        raise ValueError("each call is recorded once")
    missing = {(c.provider, c.model) for c in calls} - set(prices or {})
    known = {**(prices or {}), **(catalog_prices(pairs=missing) if missing else {})}
    groups: dict[tuple[str, str, datetime], _Group] = {}
    costs: list[tuple[BucketRow, int, bool]] = []
    now = timezone.now()
    for call in calls:
        if not call.model:
            raise UnrecordableCall("a call names its model")
        if not call.call_id or len(call.call_id) > 100:
            raise UnrecordableCall("a call has a call_id of 1 to 100 characters")
        # Validates the figures and finds the bucket exactly as a fetched row would.
        row = _bucket_row(
            call,
            at=call.at or now,
            external_key_id=f"vault:{api_key.pk}" if api_key is not None else "",
        )
        price = known[(call.provider, call.model)]
        cost = (
            0
            if price is None
            else price.cost_micros(
                input_tokens=call.input_tokens,
                output_tokens=call.output_tokens,
                cached_tokens=call.cached_tokens,
            )
        )
        costs.append((row, cost, price is not None))
        group = groups.setdefault(
            (call.provider, call.model, row.bucket_start), _Group(row, dict.fromkeys(FIGURES, 0))
        )
        for name, value in zip(
            FIGURES,
            (call.input_tokens, call.output_tokens, call.cached_tokens, 1, cost),
            strict=True,
        ):
            group.figures[name] += value
    try:
        # Calls are recorded first-wins by their unique (owner, call_id): a call recorded
        # before fails the insert and rolls the batch back whole, so nothing counts twice.
        with transaction.atomic():
            owner_lock(owner.pk)
            buckets = {
                identity: _bucket_add(owner=owner, api_key=api_key, group=group)
                for identity, group in groups.items()
            }
            rows = [
                dict(
                    owner=owner,
                    api_key=api_key,
                    provider=call.provider,
                    model=call.model,
                    input_tokens=call.input_tokens,
                    output_tokens=call.output_tokens,
                    cached_tokens=call.cached_tokens,
                    cost_micros=cost,
                    priced=priced,
                    call_id=call.call_id,
                    bucket_id=buckets[(call.provider, call.model, row.bucket_start)],
                )
                for call, (row, cost, priced) in zip(calls, costs, strict=True)
            ]
            # One INSERT for all, compiled once (core.prepared_insert).
            recorded = _METERED_CALL.create_many(rows)
    except IntegrityError:
        if len(calls) > 1:  # some were recorded before: each on its own, first-wins
            return [
                usage_record_llm_calls(owner=owner, api_key=api_key, calls=[call], prices=known)[0]
                for call in calls
            ]
        first = MeteredLlmCall.objects.filter(owner=owner, call_id=calls[0].call_id).first()
        if first is None:
            raise
        return [_metered(first)]
    return [_metered(row) for row in recorded]


class UnrecordableCall(ValueError):
    """A call no record can hold (its figures or names refused): recording it again
    would fail again."""


def _bucket_row(call: LlmCall, *, at: datetime, external_key_id: str) -> BucketRow:
    try:
        return BucketRow(
            provider=call.provider,
            model=call.model,
            bucket_start=BucketRow.aligned(at, Granularity.HOUR),
            granularity=Granularity.HOUR,
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            cached_tokens=call.cached_tokens,
            requests=1,
            cost_micros=None,
            external_key_id=external_key_id,
        )
    except ValueError as exc:
        raise UnrecordableCall(str(exc)) from None


FIGURES = ("input_tokens", "output_tokens", "cached_tokens", "requests", "cost_micros")


# Every metered call runs these (a run's each model call on credits, its calls on the
# user's key once answered): compiled once (core.prepared). A metered bucket is hourly,
# of no outside project, and its key is "vault:<id>" or "" (the server's key).
_BUCKET_FOUND: PreparedQuery[tuple[int, int | None, int | None]] = PreparedQuery(
    lambda owner_id, provider, model, external_key_id, bucket_start: first_row(
        UsageBucket.objects.filter(
            owner_id=owner_id,
            source=Source.KAY_METERED,
            provider=provider,
            model=model,
            external_project_id="",
            external_key_id=external_key_id,
            bucket_start=bucket_start,
            granularity=Granularity.HOUR,
        ).values_list("pk", "api_key_id", "project_id")
    )
)
_BUCKET_ADD = PreparedUpdate(
    lambda pk, input_tokens, output_tokens, cached_tokens, requests, cost_micros, at: (
        UsageBucket.objects.filter(pk=pk),
        {
            "input_tokens": F("input_tokens") + input_tokens,
            "output_tokens": F("output_tokens") + output_tokens,
            "cached_tokens": F("cached_tokens") + cached_tokens,
            "requests": F("requests") + requests,
            "cost_micros": F("cost_micros") + cost_micros,
            "updated_at": at,
        },
    )
)


# The day's rollup row moves by the figures its bucket moved by (the rollup's groups are
# these columns), instead of rewriting the day.
def _daily_add(
    owner_id: int,
    day: date,
    provider: str,
    model: str,
    api_key_id: int | None,
    project_id: int | None,
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int,
    requests: int,
    cost_micros: int,
) -> tuple[QuerySet[UsageDaily], dict[str, Any]]:
    # None is a lookup like any other here (IS NULL), compiled for itself (core.prepared).
    nullable: dict[str, Any] = {"api_key_id": api_key_id, "project_id": project_id}
    rollup_row = UsageDaily.objects.filter(
        owner_id=owner_id,
        source=Source.KAY_METERED,
        day=day,
        provider=provider,
        model=model,
        **nullable,
    )
    figures = zip(
        FIGURES, (input_tokens, output_tokens, cached_tokens, requests, cost_micros), strict=True
    )
    return rollup_row, {name: F(name) + value for name, value in figures}


_DAILY_ADD = PreparedUpdate(_daily_add)
_METERED_CALL = PreparedInsert(MeteredLlmCall)


def _bucket_add(*, owner: User, api_key: ApiKey | None, group: _Group) -> int:
    """Add a group's figures to its hour bucket (made when missing) and to the day's
    rollup row; the bucket's id. Inside the owner's usage lock."""
    row, figures = group.row, group.figures
    if row.granularity != Granularity.HOUR:
        raise ValueError("metered calls go to hour buckets")
    found = _BUCKET_FOUND.first(
        owner_id=owner.pk,
        provider=row.provider,
        model=row.model,
        external_key_id=row.external_key_id,
        bucket_start=row.bucket_start,
    )
    if found is None:
        bucket = UsageBucket.objects.create(
            owner=owner,
            source=Source.KAY_METERED,
            provider=row.provider,
            model=row.model,
            external_project_id="",
            external_key_id=row.external_key_id,
            bucket_start=row.bucket_start,
            granularity=row.granularity,
            **figures,
            api_key=api_key,
            project_id=api_key.project_id if api_key is not None else None,
            cost_source=CostSource.COMPUTED,
        )
        found = (bucket.pk, bucket.api_key_id, bucket.project_id)
    else:
        _BUCKET_ADD.run(pk=found[0], at=timezone.now(), **figures)
    bucket_id, bucket_key_id, bucket_project_id = found
    daily = _DAILY_ADD.run(
        owner_id=owner.pk,
        day=row.bucket_start.date(),
        provider=row.provider,
        model=row.model,
        api_key_id=bucket_key_id,
        project_id=bucket_project_id,
        **figures,
    )
    if not daily:  # no rollup row yet: written from the buckets
        rollup_rewrite(
            owner_id=owner.pk,
            source=Source.KAY_METERED,
            days=[row.bucket_start.date()],
            pairs=[(row.provider, row.model)],
        )
    return bucket_id


def _metered(recorded: MeteredLlmCall) -> MeteredCall:
    return MeteredCall(
        record_id=recorded.pk,
        bucket_id=recorded.bucket_id,
        cost_micros=recorded.cost_micros,
        cost_source=CostSource.COMPUTED,
        priced=recorded.priced,
        owner_id=recorded.owner_id,
    )
