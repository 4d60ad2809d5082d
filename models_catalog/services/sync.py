"""The catalog sync from OpenRouter (or a saved file, or the backup snapshot), the backup
writer and the catalog version that keys the API cache."""

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from django.core.cache import cache
from django.utils import timezone

from core.errors import ApplicationError, Conflict, ProviderError
from models_catalog import payloads, snapshot
from models_catalog.models import SyncRun
from models_catalog.openrouter import OpenRouterClient
from models_catalog.services.writer import Fields, Progress, SyncSummary, catalog_write

logger = logging.getLogger(__name__)

LOCK_KEY = "models_catalog:sync-lock"
VERSION_KEY = "models_catalog:version"


def catalog_version() -> str:
    """Changes whenever a sync changes the catalog; part of every API cache key."""
    return str(cache.get(VERSION_KEY) or "0")


def catalog_cache_invalidate() -> None:
    """Start a new catalog version: cached API responses of the old one are not served."""
    cache.set(VERSION_KEY, timezone.now().strftime("%Y%m%d%H%M%S%f"), timeout=None)


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


# What a sync writes: models, providers (None when they could not be read) and each
# model's endpoints (None for a model whose endpoints could not be read).
Catalog = tuple[list[Fields], list[Fields] | None, dict[str, list[Fields] | None]]


def _run(
    source: str, read: Callable[[SyncSummary], Catalog], progress: Progress | None
) -> SyncSummary:
    """Under the sync lock and logged as a SyncRun: ``read`` the catalog, then write it."""
    if not cache.add(LOCK_KEY, source, timeout=3600):
        raise Conflict("A catalog sync is already running.", code="sync_running")
    run = SyncRun.objects.create(source=source[:300])
    summary = SyncSummary(source=source, run_id=run.pk)
    try:
        models, providers, endpoints = read(summary)
        catalog_write(
            models=models,
            providers=providers,
            endpoints=endpoints,
            summary=summary,
            progress=progress,
        )
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

    def fetch(summary: SyncSummary) -> Catalog:
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
        return models, providers, endpoints

    try:
        return _run(f"openrouter {client.base_url}", fetch, progress)
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
    return _run(f"file {Path(models_path).name}", lambda _: (models, providers, {}), progress)


def catalog_load_backup(
    *, path: Path | None = None, progress: Progress | None = None
) -> SyncSummary:
    """Load the shipped models-by-provider snapshot into the tables."""
    catalog = snapshot.document_to_fields(_read_json(path or snapshot.BACKUP_PATH))
    return _run(f"backup {Path(path or snapshot.BACKUP_PATH).name}", lambda _: catalog, progress)


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
