"""Mistral: OpenAI-compatible ``GET /v1/models``, checked with the openai SDK."""

from __future__ import annotations

from keys.providers.base import Check, Provider, check_with_openai_sdk

LABEL = "Mistral"


def check(secret: str, base_url: str) -> Check:
    return check_with_openai_sdk(LABEL, secret, base_url)


PROVIDER = Provider(
    slug="mistral",
    label=LABEL,
    env_var="MISTRAL_API_KEY",
    shape="is 32 letters and digits, with no prefix",
    pattern=r"[A-Za-z0-9]{32}",
    base_url_setting="MISTRAL_BASE_URL",
    check=check,
)
