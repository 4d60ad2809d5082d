"""The catalog writer: upsert providers, models and endpoints from normalised fields.

Each row stores a fingerprint of its values, so unchanged rows are never written; one
transaction per batch of models; nothing is deleted.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from models_catalog import payloads
from models_catalog.models import Model, ModelEndpoint, Provider, SyncRun

BATCH_SIZE = 100
KINDS = ("models", "endpoints", "providers")
Progress = Callable[[str, int, int], None]
Fields = dict[str, Any]


@dataclass
class SyncSummary:
    """What a sync did, per kind of row: added, updated, deactivated, unchanged."""

    source: str
    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {
            kind: {"added": 0, "updated": 0, "deactivated": 0, "unchanged": 0} for kind in KINDS
        }
    )
    failures: list[str] = field(default_factory=list)
    run_id: int | None = None

    def count(self, kind: str, outcome: str, n: int = 1) -> None:
        self.counts[kind][outcome] += n

    @property
    def failed(self) -> int:
        return len(self.failures)

    def __str__(self) -> str:
        lines = [
            f"{kind}: " + ", ".join(f"{n} {outcome}" for outcome, n in numbers.items())
            for kind, numbers in self.counts.items()
        ]
        return "\n".join([*lines, f"failed: {self.failed}"])


def _apply(obj: Any, fields: Fields, digest: str) -> None:
    for name, value in fields.items():
        setattr(obj, name, value)
    obj.fingerprint = digest


PROVIDER_FIELDS = [
    *payloads.parse_provider({"slug": "x"}).keys(),
    "fingerprint",
    "listed",
    "last_seen",
]


def _upsert_providers(
    listed: list[Fields], referenced: dict[str, str], now: Any, summary: SyncSummary
) -> dict[str, Provider]:
    existing = {p.slug: p for p in Provider.objects.all()}
    to_create: list[Provider] = []
    to_update: list[Provider] = []
    for fields in listed:
        digest = payloads.fingerprint(fields)
        current = existing.get(fields["slug"])
        if current is None:
            current = Provider(first_seen=now, last_seen=now, listed=True)
            _apply(current, fields, digest)
            to_create.append(current)
            existing[current.slug] = current
            summary.count("providers", "added")
        elif current.fingerprint != digest or not current.listed:
            if current.location_curated:
                fields = {
                    k: v for k, v in fields.items() if k not in ("headquarters", "datacenters")
                }
            _apply(current, fields, digest)
            current.listed, current.last_seen = True, now
            to_update.append(current)
            summary.count("providers", "updated")
        else:
            summary.count("providers", "unchanged")
    for slug, name in referenced.items():
        if slug not in existing:
            # Known only from a model's endpoint; /providers may list it later.
            existing[slug] = Provider(slug=slug, name=name, first_seen=now, last_seen=now)
            to_create.append(existing[slug])
            summary.count("providers", "added")
    with transaction.atomic():
        Provider.objects.bulk_create(to_create)
        if to_update:
            # Only what OpenRouter publishes: an operator's data policy is never touched.
            Provider.objects.bulk_update(to_update, PROVIDER_FIELDS)
    if to_create and not all(p.pk for p in to_create):  # backends without RETURNING ids
        existing = {p.slug: p for p in Provider.objects.all()}
    return existing


MODEL_FIELDS = [
    *payloads.parse_model({"id": "x/y"}).keys(),
    "fingerprint",
    "is_active",
    "last_seen",
]


ENDPOINT_FIELDS = [
    name
    for name in payloads.inferred_endpoint(payloads.parse_model({"id": "x/y"}))
    if name not in ("provider_slug", "provider_name")
] + ["provider", "fingerprint", "is_active", "last_seen"]


def _write_model_batch(
    batch: list[Fields],
    endpoints: dict[str, list[Fields] | None],
    providers: dict[str, Provider],
    now: Any,
    summary: SyncSummary,
) -> None:
    ids = [fields["openrouter_id"] for fields in batch]
    with transaction.atomic():
        existing = Model.objects.select_for_update().in_bulk(ids, field_name="openrouter_id")
        new: list[Model] = []
        changed: list[Model] = []
        for fields in batch:
            digest = payloads.fingerprint(fields)
            model = existing.get(fields["openrouter_id"])
            if model is None:
                model = Model(first_seen=now, last_seen=now)
                _apply(model, fields, digest)
                new.append(model)
                existing[model.openrouter_id] = model
                summary.count("models", "added")
            elif model.fingerprint != digest or not model.is_active:
                _apply(model, fields, digest)
                model.is_active, model.last_seen = True, now
                changed.append(model)
                summary.count("models", "updated")
            else:
                summary.count("models", "unchanged")
        Model.objects.bulk_create(new)
        if changed:
            Model.objects.bulk_update(changed, MODEL_FIELDS)
        if new and not all(m.pk for m in new):
            existing = Model.objects.in_bulk(ids, field_name="openrouter_id")
        _write_endpoints(batch, existing, endpoints, providers, now, summary)


def _write_endpoints(
    batch: list[Fields],
    models: dict[str, Model],
    endpoints: dict[str, list[Fields] | None],
    providers: dict[str, Provider],
    now: Any,
    summary: SyncSummary,
) -> None:
    rows: dict[tuple[int, str], ModelEndpoint] = {
        (e.model_id, e.tag): e
        for e in ModelEndpoint.objects.filter(model__in=[models[f["openrouter_id"]] for f in batch])
    }
    has_real = {key[0] for key, e in rows.items() if e.is_active and not e.inferred}
    new: list[ModelEndpoint] = []
    changed: list[ModelEndpoint] = []
    for fields in batch:
        model = models[fields["openrouter_id"]]
        wanted = endpoints.get(model.openrouter_id)
        if wanted is None:
            if model.pk in has_real:
                continue  # no fresh data: keep what the last successful fetch said
            wanted = [payloads.inferred_endpoint(fields)]
        tags = set()
        for item in wanted:
            values = {k: v for k, v in item.items() if k not in ("provider_slug", "provider_name")}
            values["provider"] = providers[item["provider_slug"]]
            digest = payloads.fingerprint({**values, "provider": item["provider_slug"]})
            tags.add(item["tag"])
            row = rows.get((model.pk, item["tag"]))
            if row is None:
                row = ModelEndpoint(model=model, first_seen=now, last_seen=now)
                _apply(row, values, digest)
                new.append(row)
                summary.count("endpoints", "added")
            elif row.fingerprint != digest or not row.is_active:
                _apply(row, values, digest)
                row.is_active, row.last_seen = True, now
                changed.append(row)
                summary.count("endpoints", "updated")
            else:
                summary.count("endpoints", "unchanged")
        for (model_pk, tag), row in rows.items():
            if model_pk == model.pk and tag not in tags and row.is_active:
                row.is_active = False
                changed.append(row)
                summary.count("endpoints", "deactivated")
    ModelEndpoint.objects.bulk_create(new)
    if changed:
        ModelEndpoint.objects.bulk_update(changed, ENDPOINT_FIELDS)


def catalog_write(
    *,
    models: list[Fields],
    providers: list[Fields] | None,
    endpoints: dict[str, list[Fields] | None],
    summary: SyncSummary,
    progress: Progress | None,
) -> None:
    """Upsert providers, then models and their endpoints in batches, then mark models
    missing from ``models`` inactive. ``endpoints`` maps a model id to its fetched
    endpoints, or to None (or no entry) when there is no fresh endpoint data for it."""
    now = timezone.now()
    referenced: dict[str, str] = {}
    for model in models:
        fetched = endpoints.get(model["openrouter_id"])
        for endpoint in [payloads.inferred_endpoint(model)] if fetched is None else fetched:
            slug, name = endpoint["provider_slug"], endpoint["provider_name"]
            # A name one model gives ("Microsoft: Phi 4") beats one made from the slug
            # for another ("WizardLM-2 8x22B"), whatever order the models come in.
            if referenced.get(slug) in (None, payloads.provider_name_from_slug(slug)):
                referenced[slug] = name
    provider_rows = _upsert_providers(providers or [], referenced, now, summary)
    for start in range(0, len(models), BATCH_SIZE):
        _write_model_batch(
            models[start : start + BATCH_SIZE], endpoints, provider_rows, now, summary
        )
        if progress:
            progress("write", min(start + BATCH_SIZE, len(models)), len(models))
    last_run = (
        SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED).values_list("started_at", flat=True)
    ).first()
    listed = {m["openrouter_id"] for m in models}
    vanished = [
        pk
        for pk, model_id in Model.objects.filter(is_active=True).values_list("pk", "openrouter_id")
        if model_id not in listed
    ]
    if vanished:
        # last_seen of a vanished model: the last sync that still listed it.
        Model.objects.filter(pk__in=vanished).update(is_active=False, last_seen=last_run or now)
        summary.count("models", "deactivated", len(vanished))
