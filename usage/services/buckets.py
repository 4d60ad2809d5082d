"""Storing fetched usage: an idempotent upsert of buckets plus their daily rollup."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from keys.selectors import api_key_list
from usage.models import BUCKET_IDENTITY, CostSource, Source, UsageBucket
from usage.records import BucketRow
from usage.services.pricing import catalog_prices
from usage.services.rollup import FIGURES, owner_lock, rollup_rewrite

Identity = tuple[str, str, str, str, datetime, str]
UPDATED = ["api_key", "project", *FIGURES, "cost_source", "updated_at"]
UNIQUE = list(BUCKET_IDENTITY)


@dataclass
class _Merged:
    """The rows of one identity in one call, added up."""

    row: BucketRow
    figures: dict[str, int]
    provider_cost: bool


def _merge(rows: Sequence[BucketRow]) -> dict[Identity, _Merged]:
    """Rows added up per identity, each priced (provider cost, else catalog price)."""
    prices = catalog_prices(pairs={(r.provider, r.model) for r in rows if r.cost_micros is None})
    merged: dict[Identity, _Merged] = {}
    for row in rows:
        if row.cost_micros is None:
            price = prices[(row.provider, row.model)]
            cost = (
                0
                if price is None
                else price.cost_micros(
                    input_tokens=row.input_tokens,
                    output_tokens=row.output_tokens,
                    cached_tokens=row.cached_tokens,
                )
            )
        else:
            cost = row.cost_micros
        figures = {name: getattr(row, name) for name in FIGURES if name != "cost_micros"}
        figures["cost_micros"] = cost
        found = merged.get(row.identity)
        if found is None:
            merged[row.identity] = _Merged(row, figures, row.cost_micros is not None)
        else:
            for name, value in figures.items():
                found.figures[name] += value
            # A sum that is partly our estimate is an estimate.
            found.provider_cost = found.provider_cost and row.cost_micros is not None
    return merged


def _attributions(*, owner: User, rows: Sequence[BucketRow]) -> dict[int, int | None]:
    """The owner's stored keys among the rows' ``api_key_id``s, with their projects.
    An id that is not the owner's (deleted since, or never theirs) attributes nothing."""
    wanted = {r.api_key_id for r in rows if r.api_key_id is not None}
    if not wanted:
        return {}
    keys = api_key_list(owner=owner).filter(pk__in=wanted).values_list("pk", "project_id")
    return dict(keys)


def _stored_provider_costs(
    *, owner: User, source: str, identities: set[Identity]
) -> dict[Identity, int]:
    """Provider-reported costs already stored for these identities (one query)."""
    starts = [identity[4] for identity in identities]
    stored = UsageBucket.objects.filter(
        owner=owner,
        source=source,
        cost_source=CostSource.PROVIDER,
        provider__in={identity[0] for identity in identities},
        model__in={identity[1] for identity in identities},
        bucket_start__gte=min(starts),
        bucket_start__lte=max(starts),
    ).values_list(*UNIQUE[2:], "cost_micros")
    found = {
        (p, m, xp, xk, start.astimezone(UTC), g): cost for p, m, xp, xk, start, g, cost in stored
    }
    return {identity: cost for identity, cost in found.items() if identity in identities}


def usage_buckets_upsert(*, owner: User, source: str, rows: Sequence[BucketRow]) -> int:
    """Store fetched usage rows for ``owner``; returns how many buckets were written.

    Idempotent: a row replaces the stored bucket of its identity, so re-reading an
    overlapping window never double counts and a late report updates its bucket in
    place. A cost the provider reported is never replaced by one computed from catalog
    prices. The daily rollup of the touched days is rewritten in the same transaction.
    A handful of queries for any number of rows."""
    if source not in Source.values or source == Source.KAY_METERED:
        raise ValueError(f"{source!r} is not a fetched usage source")
    if not rows:
        return 0
    merged = _merge(rows)
    projects = _attributions(owner=owner, rows=rows)
    now = timezone.now()
    with transaction.atomic():
        owner_lock(owner.pk)
        kept = _stored_provider_costs(owner=owner, source=source, identities=set(merged))
        buckets = []
        for identity, entry in merged.items():
            figures, cost_source = entry.figures, CostSource.COMPUTED
            if entry.provider_cost:
                cost_source = CostSource.PROVIDER
            elif identity in kept:
                figures, cost_source = (
                    {**figures, "cost_micros": kept[identity]},
                    CostSource.PROVIDER,
                )
            key_id = entry.row.api_key_id if entry.row.api_key_id in projects else None
            buckets.append(
                UsageBucket(
                    owner=owner,
                    source=source,
                    provider=entry.row.provider,
                    model=entry.row.model,
                    external_project_id=entry.row.external_project_id,
                    external_key_id=entry.row.external_key_id,
                    bucket_start=identity[4],
                    granularity=entry.row.granularity,
                    api_key_id=key_id,
                    project_id=projects.get(key_id) if key_id is not None else None,
                    cost_source=cost_source,
                    updated_at=now,
                    **figures,
                )
            )
        UsageBucket.objects.bulk_create(
            buckets,
            batch_size=500,
            update_conflicts=True,
            unique_fields=UNIQUE,
            update_fields=UPDATED,
        )
        rollup_rewrite(
            owner_id=owner.pk,
            source=source,
            days={identity[4].date() for identity in merged},
            pairs={(identity[0], identity[1]) for identity in merged},
        )
    return len(buckets)
