"""Anthropic: ``GET /v1/models`` with ``x-api-key`` and ``anthropic-version``."""

from __future__ import annotations

from keys.providers.base import Check, Provider, check_with_http

LABEL = "Anthropic"
API_VERSION = "2023-06-01"


def check(secret: str, base_url: str) -> Check:
    return check_with_http(
        LABEL,
        f"{base_url}/v1/models?limit=1",
        {"x-api-key": secret, "anthropic-version": API_VERSION},
    )


PROVIDER = Provider(
    slug="anthropic",
    label=LABEL,
    env_var="ANTHROPIC_API_KEY",
    shape="starts with sk-ant- (sk-ant-api03-…, or sk-ant-admin01-… for usage tracking) and "
    "is at least 40 characters long",
    # API keys are 108 characters (sk-ant-api03-…); admin and compliance keys share the prefix.
    pattern=r"sk-ant-[A-Za-z0-9_\-]{33,}",
    base_url_setting="ANTHROPIC_BASE_URL",
    check=check,
)
