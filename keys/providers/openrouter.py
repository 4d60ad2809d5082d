"""OpenRouter: ``GET /api/v1/key`` describes the calling key (limits, usage)."""

from __future__ import annotations

from keys.providers.base import Check, Provider, check_with_http

LABEL = "OpenRouter"


def check(secret: str, base_url: str) -> Check:
    return check_with_http(LABEL, f"{base_url}/key", {"Authorization": f"Bearer {secret}"})


PROVIDER = Provider(
    slug="openrouter",
    label=LABEL,
    env_var="OPENROUTER_API_KEY",
    shape="starts with sk-or-v1- followed by 64 hexadecimal characters",
    pattern=r"sk-or-v1-[0-9a-f]{64}",
    base_url_setting="OPENROUTER_BASE_URL",
    check=check,
)
