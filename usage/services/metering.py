"""Metering: every LLM call Kay itself makes, recorded once as usage of the key that paid."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import User
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
    """Record one LLM call Kay made for ``owner``: the one way other apps write usage.

    ``call_id`` is the caller's idempotency key: recording the same ``call_id`` again
    returns the first record and adds nothing (the owner's usage lock makes a concurrent
    second recording wait, then find the first).

    ``api_key`` is the owner's stored key that paid for the call (None: the server's key,
    billed to the owner's credits). The tokens come from the provider's response
    (``input_tokens`` including ``cached_tokens``); the cost from the model catalog's
    prices (``prices``: ones the caller looked up already, as :func:`catalog_prices`
    returned them). Added to the hour bucket of ``at`` (now by default) with atomic
    increments, so calls recorded at the same moment all count; the daily rollup follows."""
    if api_key is not None and api_key.owner_id != owner.pk:
        raise ValueError("a call is recorded against its owner's own key only")
    if not model:
        raise ValueError("a call names its model")
    if not call_id or len(call_id) > 100:
        raise ValueError("a call has a call_id of 1 to 100 characters")
    # Validates the figures and finds the bucket exactly as a fetched row would.
    row = BucketRow(
        provider=provider,
        model=model,
        bucket_start=BucketRow.aligned(at or timezone.now(), Granularity.HOUR),
        granularity=Granularity.HOUR,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_tokens=cached_tokens,
        requests=1,
        cost_micros=None,
        external_key_id=f"vault:{api_key.pk}" if api_key is not None else "",
    )
    pair = (provider, model)
    price = prices[pair] if prices and pair in prices else catalog_prices(pairs={pair})[pair]
    cost = (
        0
        if price is None
        else price.cost_micros(
            input_tokens=input_tokens, output_tokens=output_tokens, cached_tokens=cached_tokens
        )
    )
    figures = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cached_tokens": cached_tokens,
        "requests": 1,
        "cost_micros": cost,
    }
    identity = dict(
        owner=owner,
        source=Source.KAY_METERED,
        provider=provider,
        model=model,
        external_project_id="",
        external_key_id=row.external_key_id,
        bucket_start=row.bucket_start,
        granularity=row.granularity,
    )
    try:
        # The call is recorded first-wins by its unique (owner, call_id): a second recording
        # fails its insert and rolls back whole, so nothing is counted twice.
        with transaction.atomic():
            owner_lock(owner.pk)
            found: tuple[int, int | None, int | None] | None = (
                UsageBucket.objects.filter(**identity)
                .values_list("pk", "api_key_id", "project_id")
                .first()
            )
            if found is None:
                bucket = UsageBucket.objects.create(
                    **identity,
                    **figures,
                    api_key=api_key,
                    project_id=api_key.project_id if api_key is not None else None,
                    cost_source=CostSource.COMPUTED,
                )
                found = (bucket.pk, bucket.api_key_id, bucket.project_id)
            else:
                UsageBucket.objects.filter(pk=found[0]).update(
                    **{name: F(name) + value for name, value in figures.items()},
                    updated_at=timezone.now(),
                )
            bucket_id, bucket_key_id, bucket_project_id = found
            # The day's rollup row moves by the figures its bucket moved by: one UPDATE
            # (the rollup's groups are these columns), instead of rewriting the day.
            group: dict[str, Any] = {"api_key_id": bucket_key_id, "project_id": bucket_project_id}
            daily = UsageDaily.objects.filter(
                owner=owner,
                source=Source.KAY_METERED,
                day=row.bucket_start.date(),
                provider=provider,
                model=model,
                **group,
            ).update(**{name: F(name) + value for name, value in figures.items()})
            if not daily:  # no rollup row yet: written from the buckets
                rollup_rewrite(
                    owner_id=owner.pk,
                    source=Source.KAY_METERED,
                    days=[row.bucket_start.date()],
                    pairs=[pair],
                )
            recorded = MeteredLlmCall.objects.create(
                owner=owner,
                api_key=api_key,
                provider=provider,
                model=model,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cached_tokens=cached_tokens,
                cost_micros=cost,
                priced=price is not None,
                call_id=call_id,
                bucket_id=bucket_id,
            )
    except IntegrityError:
        first = MeteredLlmCall.objects.filter(owner=owner, call_id=call_id).first()
        if first is None:
            raise
        return _metered(first)
    return _metered(recorded)


def _metered(recorded: MeteredLlmCall) -> MeteredCall:
    return MeteredCall(
        record_id=recorded.pk,
        bucket_id=recorded.bucket_id,
        cost_micros=recorded.cost_micros,
        cost_source=CostSource.COMPUTED,
        priced=recorded.priced,
        owner_id=recorded.owner_id,
    )
