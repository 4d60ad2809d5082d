"""Storing fetched usage: an idempotent upsert of buckets plus their daily rollup."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from keys.selectors import api_key_list
from usage.models import BUCKET_IDENTITY, CostSource, Source, UsageBucket
from usage.records import BucketRow
from usage.services.pricing import Pair, Price, catalog_prices
from usage.services.rollup import FIGURES, owner_lock, rollup_rewrite

Identity = tuple[str, str, str, str, datetime, str]
UPDATED = ["api_key", "project", *FIGURES, "cost_source", "updated_at"]
UNIQUE = list(BUCKET_IDENTITY)
# What a stored bucket is compared on: everything ``UPDATED`` writes but the time.
COMPARED = ("api_key_id", "project_id", *FIGURES, "cost_source")
TOKENS = tuple(name for name in FIGURES if name != "cost_micros")


@dataclass
class _Merged:
    """The rows of one identity in one call, added up; ``cost_micros`` holds the costs
    the provider reported (``reported``: on some row), ``unpriced`` the rows whose cost
    is the catalog's."""

    row: BucketRow
    figures: dict[str, int]
    reported: bool = False
    unpriced: list[BucketRow] = field(default_factory=list)


def _merge(rows: Sequence[BucketRow]) -> dict[Identity, _Merged]:
    merged: dict[Identity, _Merged] = {}
    for row in rows:
        figures = {name: getattr(row, name) for name in TOKENS}
        figures["cost_micros"] = row.cost_micros or 0
        found = merged.get(row.identity)
        if found is None:
            found = merged[row.identity] = _Merged(row, figures)
        else:
            for name, value in figures.items():
                found.figures[name] += value
        if row.cost_micros is None:
            found.unpriced.append(row)
        else:
            found.reported = True
    return merged


def _attributions(*, owner: User, rows: Sequence[BucketRow]) -> dict[int, int | None]:
    """The owner's stored keys among the rows' ``api_key_id``s, with their projects.
    An id that is not the owner's (deleted since, or never theirs) attributes nothing."""
    wanted = {r.api_key_id for r in rows if r.api_key_id is not None}
    if not wanted:
        return {}
    keys = api_key_list(owner=owner).filter(pk__in=wanted).values_list("pk", "project_id")
    return dict(keys)


def _stored(*, owner: User, source: str, identities: set[Identity]) -> dict[Identity, tuple]:
    """The stored buckets of these identities, as ``COMPARED`` values (one query)."""
    starts = [identity[4] for identity in identities]
    stored = (
        UsageBucket.objects.filter(
            owner=owner,
            source=source,
            provider__in={identity[0] for identity in identities},
            model__in={identity[1] for identity in identities},
            bucket_start__gte=min(starts),
            bucket_start__lte=max(starts),
        )
        .values_list(*UNIQUE[2:], *COMPARED)
        .order_by()
    )  # (no sort: read into a dict)
    found = {}
    for p, m, xp, xk, start, g, *compared in stored:
        identity = (p, m, xp, xk, start.astimezone(UTC), g)
        if identity in identities:
            found[identity] = tuple(compared)
    return found


def _needs_price(entry: _Merged, stored: tuple | None, attributed: tuple) -> bool:
    """Whether the catalog must price this bucket: not when the provider reported its
    whole cost or already did for the stored bucket (its cost wins), nor when the stored
    bucket has these very figures and a catalog price (a re-read bringing nothing new
    keeps the price it was stored with; one stored at cost 0 is looked up again)."""
    if not entry.unpriced or (stored is not None and stored[-1] == CostSource.PROVIDER):
        return False
    if stored is None or entry.reported:
        return True  # (a stored cost partly the provider's cannot be told apart)
    figures = tuple(entry.figures[name] for name in TOKENS)
    cost = stored[2 + len(TOKENS)]
    return stored[:2] != attributed or stored[2 : 2 + len(TOKENS)] != figures or cost == 0


def _wanted(
    entry: _Merged, stored: tuple | None, attributed: tuple, prices: dict[Pair, Price | None]
) -> tuple:
    """The bucket as it should be stored, as ``COMPARED`` values."""
    figures, cost_source = dict(entry.figures), CostSource.PROVIDER
    if stored is not None and stored[-1] == CostSource.PROVIDER and entry.unpriced:
        # A cost the provider reported is never replaced by one from catalog prices.
        figures["cost_micros"] = stored[2 + len(TOKENS)]
    elif entry.unpriced and not _needs_price(entry, stored, attributed):
        return stored  # type: ignore[return-value]  # the same figures as stored
    elif entry.unpriced:
        # A sum that is partly our estimate is an estimate.
        cost_source = CostSource.COMPUTED
        for row in entry.unpriced:
            price = prices[(row.provider, row.model)]
            if price is not None:
                figures["cost_micros"] += price.cost_micros(
                    input_tokens=row.input_tokens,
                    output_tokens=row.output_tokens,
                    cached_tokens=row.cached_tokens,
                )
    return (*attributed, *(figures[name] for name in FIGURES), cost_source)


def usage_buckets_upsert(*, owner: User, source: str, rows: Sequence[BucketRow]) -> int:
    """Store fetched usage rows for ``owner``; returns how many buckets were written.

    Idempotent: a row replaces the stored bucket of its identity, so re-reading an
    overlapping window never double counts and a late report updates its bucket in
    place. Only buckets whose figures changed are written, and only their days of the
    daily rollup rewritten, in the same transaction: the 48 h re-read of a fetch that
    brings nothing new writes nothing. A cost the provider reported is never replaced by
    one computed from catalog prices; the catalog prices a bucket when its figures
    change. A handful of queries for any number of rows. Runs inside the caller's
    transaction when there is one (a failure rolls all of it back)."""
    if source not in Source.values or source == Source.KAY_METERED:
        raise ValueError(f"{source!r} is not a fetched usage source")
    if not rows:
        return 0
    merged = _merge(rows)
    projects = _attributions(owner=owner, rows=rows)
    now = timezone.now()
    with transaction.atomic(savepoint=False):
        owner_lock(owner.pk)
        stored = _stored(owner=owner, source=source, identities=set(merged))
        attributed: dict[Identity, tuple[int | None, int | None]] = {}
        for identity, entry in merged.items():
            key_id = entry.row.api_key_id if entry.row.api_key_id in projects else None
            attributed[identity] = (key_id, projects.get(key_id) if key_id is not None else None)
        prices = catalog_prices(
            pairs={
                (row.provider, row.model)
                for identity, entry in merged.items()
                if _needs_price(entry, stored.get(identity), attributed[identity])
                for row in entry.unpriced
            }
        )
        buckets = []
        for identity, entry in merged.items():
            wanted = _wanted(entry, stored.get(identity), attributed[identity], prices)
            if wanted == stored.get(identity):
                continue
            values: dict[str, Any] = dict(zip(COMPARED, wanted, strict=True))
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
                    updated_at=now,
                    **values,
                )
            )
        if not buckets:
            return 0
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
            days={bucket.bucket_start.date() for bucket in buckets},
            pairs={(bucket.provider, bucket.model) for bucket in buckets},
        )
    return len(buckets)
