"""Writes of the key vault. Each is atomic, takes the acting user and writes an audit row."""

from keys.services.api_keys import (
    api_key_check,
    api_key_create,
    api_key_delete,
    api_key_revalidate,
    api_key_rotate,
    api_key_update,
)
from keys.services.common import UNSET, Origin, audit, mask_secret
from keys.services.onboarding import onboarding_start, onboarding_step_done
from keys.services.projects import project_create, project_delete, project_update

__all__ = [
    "UNSET",
    "Origin",
    "api_key_check",
    "api_key_create",
    "api_key_delete",
    "api_key_revalidate",
    "api_key_rotate",
    "api_key_update",
    "audit",
    "mask_secret",
    "onboarding_start",
    "onboarding_step_done",
    "project_create",
    "project_delete",
    "project_update",
]
