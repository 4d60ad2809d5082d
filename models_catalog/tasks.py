"""Celery tasks of the catalog: thin wrappers around services."""

from typing import Any

from celery import shared_task

from core.errors import Conflict, ProviderError
from models_catalog import services


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(ProviderError,),
    retry_backoff=60,
    retry_backoff_max=900,
    retry_jitter=True,
    max_retries=3,
)
def sync_models(self: Any) -> dict[str, Any]:
    """Beat runs this every 6 hours; the admin's "Sync now" queues it too."""
    try:
        summary = services.catalog_sync()
    except Conflict:
        return {"skipped": "a sync is already running"}
    return {"counts": summary.counts, "failed": summary.failed, "run": summary.run_id}
