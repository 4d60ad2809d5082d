"""Groq: OpenAI-compatible ``GET /openai/v1/models``, checked with the openai SDK."""

from __future__ import annotations

from keys.providers.base import Check, Provider, check_with_openai_sdk

LABEL = "Groq"


def check(secret: str, base_url: str) -> Check:
    return check_with_openai_sdk(LABEL, secret, base_url)


PROVIDER = Provider(
    slug="groq",
    label=LABEL,
    env_var="GROQ_API_KEY",
    shape="starts with gsk_ followed by about 52 letters and digits",
    pattern=r"gsk_[A-Za-z0-9]{40,}",
    base_url_setting="GROQ_BASE_URL",
    check=check,
)
