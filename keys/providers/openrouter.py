"""OpenRouter: ``GET /api/v1/key`` describes the calling key (limits, usage).

A management (provisioning) key looks like any other key; only that answer tells it
(``is_management_key``, formerly ``is_provisioning_key``). It manages keys and reads the
account's activity but cannot call models, so it is stored with kind "admin", shown as
"OpenRouter management key" and never handed out for model calls (``keys.access``)."""

from __future__ import annotations

import httpx

from keys.providers.base import Check, Provider, check_with_http

LABEL = "OpenRouter"


def is_management_key(response: httpx.Response) -> bool:
    """Whether a ``/key`` answer says the key is a management key."""
    try:
        data = response.json().get("data") or {}
        return bool(data.get("is_management_key") or data.get("is_provisioning_key"))
    except (ValueError, AttributeError):
        return False


def check(secret: str, base_url: str) -> Check:
    return check_with_http(
        LABEL, f"{base_url}/key", {"Authorization": f"Bearer {secret}"}, is_admin=is_management_key
    )


PROVIDER = Provider(
    slug="openrouter",
    label=LABEL,
    env_var="OPENROUTER_API_KEY",
    shape="starts with sk-or-v1- followed by 64 hexadecimal characters",
    pattern=r"sk-or-v1-[0-9a-f]{64}",
    base_url_setting="OPENROUTER_BASE_URL",
    check=check,
    admin_label="management key",
)
