"""Writes to the catalog: the OpenRouter sync, the backup snapshot, user preferences."""

import json
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import ApplicationError, Conflict, ProviderError
from models_catalog import payloads, snapshot
from models_catalog.models import (
    CatalogPreference,
    Model,
    ModelEndpoint,
    Provider,
    SyncRun,
)
from models_catalog.openrouter import OpenRouterClient

logger = logging.getLogger(__name__)

BATCH_SIZE = 100
LOCK_KEY = "models_catalog:sync-lock"
VERSION_KEY = "models_catalog:version"
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


def catalog_version() -> str:
    """Changes whenever a sync changes the catalog; part of every API cache key."""
    return str(cache.get(VERSION_KEY) or "0")


def catalog_cache_invalidate() -> None:
    """Start a new catalog version: cached API responses of the old one are not served."""
    cache.set(VERSION_KEY, timezone.now().strftime("%Y%m%d%H%M%S%f"), timeout=None)


def _apply(obj: Any, fields: Fields, digest: str) -> None:
    for name, value in fields.items():
        setattr(obj, name, value)
    obj.fingerprint = digest


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
            Provider.objects.bulk_update(
                to_update, [f.name for f in Provider._meta.concrete_fields if not f.primary_key]
            )
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


def _fetch_endpoints(
    client: OpenRouterClient,
    model_ids: list[str],
    concurrency: int,
    summary: SyncSummary,
    progress: Progress | None,
) -> dict[str, list[Fields] | None]:
    found: dict[str, list[Fields] | None] = {}
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = {
            pool.submit(client.model_endpoints, model_id): model_id for model_id in model_ids
        }
        for done, future in enumerate(as_completed(futures), start=1):
            model_id = futures[future]
            try:
                found[model_id] = payloads.parse_endpoints(future.result(), model_id)
            except ProviderError as exc:
                found[model_id] = None
                summary.failures.append(f"endpoints of {model_id}: {exc.message}")
            if progress:
                progress("endpoints", done, len(model_ids))
    return found


def _catalog_write(
    *,
    models: list[Fields],
    providers: list[Fields] | None,
    endpoints: dict[str, list[Fields] | None],
    summary: SyncSummary,
    progress: Progress | None,
) -> None:
    now = timezone.now()
    referenced = {
        e["provider_slug"]: e["provider_name"]
        for model in models
        for e in (endpoints.get(model["openrouter_id"]) or [payloads.inferred_endpoint(model)])
    }
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


def _run(source: str, work: Callable[[SyncSummary], None]) -> SyncSummary:
    if not cache.add(LOCK_KEY, source, timeout=3600):
        raise Conflict("A catalog sync is already running.", code="sync_running")
    run = SyncRun.objects.create(source=source[:300])
    summary = SyncSummary(source=source, run_id=run.pk)
    try:
        work(summary)
    except Exception as exc:
        run.status, run.error = SyncRun.Status.FAILED, str(exc)[:2000]
        raise
    else:
        run.status = SyncRun.Status.SUCCEEDED
        run.error = "\n".join(summary.failures)[:5000]
        if any(n["added"] or n["updated"] or n["deactivated"] for n in summary.counts.values()):
            catalog_cache_invalidate()
    finally:
        numbers = summary.counts["models"]
        run.added, run.updated = numbers["added"], numbers["updated"]
        run.deactivated, run.unchanged = numbers["deactivated"], numbers["unchanged"]
        run.failed, run.finished_at = summary.failed, timezone.now()
        run.details = summary.counts
        run.save()
        cache.delete(LOCK_KEY)
    logger.info("Catalog sync from %s finished:\n%s", source, summary)
    return summary


def catalog_sync(
    *,
    client: OpenRouterClient | None = None,
    concurrency: int = 8,
    with_endpoints: bool = True,
    progress: Progress | None = None,
) -> SyncSummary:
    """Fetch models, providers and each model's endpoints from OpenRouter and upsert them.

    Idempotent (unchanged rows are not written), one transaction per batch of models,
    never deletes (vanished models become inactive). A malformed ``/models`` body raises
    before any catalog row is touched; a failing ``/providers`` or ``/endpoints`` call is
    counted as failed and the rest of the sync goes on.
    """
    own_client = client is None
    client = client or OpenRouterClient()

    def work(summary: SyncSummary) -> None:
        models = payloads.parse_models(client.models())
        providers: list[Fields] | None = None
        try:
            providers = payloads.parse_providers(client.providers())
        except ProviderError as exc:
            summary.failures.append(f"providers: {exc.message}")
        ids = [m["openrouter_id"] for m in models]
        endpoints: dict[str, list[Fields] | None] = (
            _fetch_endpoints(client, ids, concurrency, summary, progress) if with_endpoints else {}
        )
        _catalog_write(
            models=models,
            providers=providers,
            endpoints=endpoints,
            summary=summary,
            progress=progress,
        )

    try:
        return _run(f"openrouter {client.base_url}", work)
    finally:
        if own_client:
            client.close()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ApplicationError(f"Cannot read {path}: {exc}", code="catalog_file_invalid") from None


def catalog_sync_from_files(
    *, models_path: Path, providers_path: Path | None = None, progress: Progress | None = None
) -> SyncSummary:
    """Load a saved ``/models`` response (and optionally ``/providers``) with no network.

    Models that have no endpoint data get one endpoint inferred from their listing."""
    models = payloads.parse_models(_read_json(models_path))
    providers = payloads.parse_providers(_read_json(providers_path)) if providers_path else None

    def work(summary: SyncSummary) -> None:
        _catalog_write(
            models=models, providers=providers, endpoints={}, summary=summary, progress=progress
        )

    return _run(f"file {Path(models_path).name}", work)


def catalog_load_backup(
    *, path: Path | None = None, progress: Progress | None = None
) -> SyncSummary:
    """Load the shipped models-by-provider snapshot into the tables."""
    document = _read_json(path or snapshot.BACKUP_PATH)
    models, providers, endpoints = snapshot.document_to_fields(document)

    def work(summary: SyncSummary) -> None:
        _catalog_write(
            models=models,
            providers=providers,
            endpoints=endpoints,
            summary=summary,
            progress=progress,
        )

    return _run(f"backup {Path(path or snapshot.BACKUP_PATH).name}", work)


def catalog_backup_write(
    *, path: Path | None = None, source_note: str = "", data_as_of: str = ""
) -> int:
    """Rewrite the backup snapshot from the tables; returns the number of models written.

    ``data_as_of`` records the date of the OpenRouter data (today's date by default)."""
    from models_catalog.selectors import catalog_offers_from_db

    offers = catalog_offers_from_db()
    if not offers:
        raise ApplicationError("The catalog is empty: sync it before writing a backup.")
    document = snapshot.offers_to_document(offers, source="backup", note=source_note)
    document["data_as_of"] = data_as_of or timezone.localdate().isoformat()
    target = Path(path or snapshot.BACKUP_PATH)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    tmp.replace(target)
    return int(document["total_models"])


# --- Preferences -----------------------------------------------------------------------


def _preference(user: Any) -> CatalogPreference:
    preference, _ = CatalogPreference.objects.get_or_create(user=user)
    return preference


def preference_model_allow(*, user: Any, model: Model, allowed: bool) -> CatalogPreference:
    """Add a model to (or remove it from) the user's allowed models."""
    preference = _preference(user)
    if allowed:
        preference.allowed_models.add(model)
    else:
        preference.allowed_models.remove(model)
        if preference.preferred_model_id == model.pk:
            preference.preferred_model = None
    preference.save()
    return preference


def preference_provider_allow(*, user: Any, provider: Provider, allowed: bool) -> CatalogPreference:
    """Allow (or stop allowing) every model a provider serves."""
    preference = _preference(user)
    if allowed:
        preference.allowed_providers.add(provider)
    else:
        preference.allowed_providers.remove(provider)
    preference.save()
    return preference


def preference_preferred_set(*, user: Any, model: Model | None) -> CatalogPreference:
    """Choose the model the assistant uses; it must be allowed if the user restricts models."""
    preference = _preference(user)
    if model is not None:
        restricted = preference.allowed_models.exists() or preference.allowed_providers.exists()
        allowed = (
            preference.allowed_models.filter(pk=model.pk).exists()
            or model.endpoints.filter(
                Q(provider__in=preference.allowed_providers.all()), is_active=True
            ).exists()
        )
        if restricted and not allowed:
            raise ApplicationError(
                f"{model.name} is not in your allowed models. Allow it first.",
                code="model_not_allowed",
            )
        if not model.is_active or model.disabled:
            raise ApplicationError(f"{model.name} is no longer offered.", code="model_inactive")
    preference.preferred_model = model
    preference.save()
    return preference


@transaction.atomic
def preferences_replace(
    *,
    user: Any,
    allowed_models: list[str],
    allowed_providers: list[str],
    preferred_model: str | None,
) -> CatalogPreference:
    """Set all of a user's catalog preferences at once (OpenRouter ids, provider slugs).

    Unknown ids or slugs are a validation error naming them; nothing is changed then."""
    models = {m.openrouter_id: m for m in Model.objects.filter(openrouter_id__in=allowed_models)}
    providers = {p.slug: p for p in Provider.objects.filter(slug__in=allowed_providers)}
    fields: dict[str, list[str]] = {}
    if missing := sorted(set(allowed_models) - set(models)):
        fields["allowed_models"] = [f"Unknown model: {model_id}" for model_id in missing]
    if missing := sorted(set(allowed_providers) - set(providers)):
        fields["allowed_providers"] = [f"Unknown provider: {slug}" for slug in missing]
    preferred = (
        Model.objects.filter(openrouter_id=preferred_model).first() if preferred_model else None
    )
    if preferred_model and preferred is None:
        fields["preferred_model"] = [f"Unknown model: {preferred_model}"]
    if fields:
        raise ApplicationError(
            "Some preferences are not valid.", code="validation_error", fields=fields
        )
    preference = _preference(user)
    preference.allowed_models.set(models.values())
    preference.allowed_providers.set(providers.values())
    preference.preferred_model = None
    preference.save()
    return preference_preferred_set(user=user, model=preferred)


def models_feature(*, models: Iterable[Model], featured: bool) -> int:
    """Operator action: feature models (shown first) or stop featuring them."""
    count = Model.objects.filter(pk__in=[m.pk for m in models]).update(is_featured=featured)
    catalog_cache_invalidate()
    return count


def models_disable(*, models: Iterable[Model], disabled: bool) -> int:
    """Operator action: hide models from users (or show them again); syncs keep this."""
    count = Model.objects.filter(pk__in=[m.pk for m in models]).update(disabled=disabled)
    catalog_cache_invalidate()
    return count
