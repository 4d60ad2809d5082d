"""The catalog writer: upsert providers, models and endpoints from normalised fields.

Each row stores a fingerprint of its values, so unchanged rows are never written; one
transaction per batch of models; nothing is deleted.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from django.db import transaction
from django.utils import timezone

from models_catalog import payloads
from models_catalog.models import Model, ModelEndpoint, Provider, Synced, SyncRun

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


S = TypeVar("S", bound=Synced)


class _Upserts(Generic[S]):
    """Rows of one kind brought up to date with what the sync read, then saved in bulk. A
    row is added; updated when its values (their fingerprint) changed or the sync had
    stopped seeing it (its ``seen`` flag is False); else left unchanged."""

    def __init__(
        self,
        model: type[S],
        kind: str,
        update_fields: list[str],
        now: Any,
        summary: SyncSummary,
        *,
        seen: str = "is_active",
    ) -> None:
        self.model, self.kind, self.update_fields = model, kind, update_fields
        self.now, self.summary, self.seen = now, summary, seen
        self.new: list[S] = []
        self.changed: list[S] = []

    def put(self, row: S | None, fields: Fields, digest: str, **new: Any) -> S:
        """``row`` (None for one not stored yet, made with ``new``) given ``fields``."""
        if row is None:
            row = self.model(first_seen=self.now, **new)
            self.new.append(row)
            outcome = "added"
        elif row.fingerprint != digest or not getattr(row, self.seen):
            self.changed.append(row)
            outcome = "updated"
        else:
            self.summary.count(self.kind, "unchanged")
            return row
        for name, value in fields.items():
            setattr(row, name, value)
        row.fingerprint, row.last_seen = digest, self.now
        setattr(row, self.seen, True)
        self.summary.count(self.kind, outcome)
        return row

    def save(self) -> None:
        self.model._default_manager.bulk_create(self.new)
        if self.changed:
            self.model._default_manager.bulk_update(self.changed, self.update_fields)


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
    # Only what OpenRouter publishes is updated: an operator's data policy is never touched.
    rows = _Upserts(Provider, "providers", PROVIDER_FIELDS, now, summary, seen="listed")
    for fields in listed:
        digest = payloads.fingerprint(fields)
        current = existing.get(fields["slug"])
        if current is not None and current.location_curated:
            fields = {k: v for k, v in fields.items() if k not in ("headquarters", "datacenters")}
        existing[fields["slug"]] = rows.put(current, fields, digest)
    for slug, name in referenced.items():
        if slug not in existing:
            # Known only from a model's endpoint; /providers may list it later.
            existing[slug] = Provider(slug=slug, name=name, first_seen=now, last_seen=now)
            rows.new.append(existing[slug])
            summary.count("providers", "added")
    with transaction.atomic():
        rows.save()
    if rows.new and not all(p.pk for p in rows.new):  # backends without RETURNING ids
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
        rows = _Upserts(Model, "models", MODEL_FIELDS, now, summary)
        for fields in batch:
            model_id = fields["openrouter_id"]
            existing[model_id] = rows.put(
                existing.get(model_id), fields, payloads.fingerprint(fields)
            )
        rows.save()
        if rows.new and not all(m.pk for m in rows.new):
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
    upserts = _Upserts(ModelEndpoint, "endpoints", ENDPOINT_FIELDS, now, summary)
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
            upserts.put(rows.get((model.pk, item["tag"])), values, digest, model=model)
        for (model_pk, tag), row in rows.items():
            if model_pk == model.pk and tag not in tags and row.is_active:
                row.is_active = False
                upserts.changed.append(row)
                summary.count("endpoints", "deactivated")
    upserts.save()


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
