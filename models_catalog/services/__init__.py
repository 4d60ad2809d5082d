"""Writes to the catalog: the OpenRouter sync, the backup snapshot, user preferences."""

from models_catalog.services.preferences import (
    models_disable,
    models_feature,
    preference_model_allow,
    preference_preferred_set,
    preference_provider_allow,
    preferences_replace,
)
from models_catalog.services.sync import (
    LOCK_KEY,
    catalog_backup_write,
    catalog_cache_invalidate,
    catalog_load_backup,
    catalog_sync,
    catalog_sync_from_files,
    catalog_version,
)
from models_catalog.services.writer import Progress, SyncSummary

__all__ = [
    "LOCK_KEY",
    "Progress",
    "SyncSummary",
    "catalog_backup_write",
    "catalog_cache_invalidate",
    "catalog_load_backup",
    "catalog_sync",
    "catalog_sync_from_files",
    "catalog_version",
    "models_disable",
    "models_feature",
    "preference_model_allow",
    "preference_preferred_set",
    "preference_provider_allow",
    "preferences_replace",
]
