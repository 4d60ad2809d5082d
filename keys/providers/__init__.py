"""The provider registry: one module per provider, in the order the dashboard lists them."""

from __future__ import annotations

from keys.providers import (
    anthropic,
    copilotkit,
    exa,
    gemini,
    groq,
    mistral,
    openai,
    openai_compatible,
    openrouter,
)
from keys.providers.base import Check, Provider

PROVIDERS: dict[str, Provider] = {
    module.PROVIDER.slug: module.PROVIDER
    for module in (
        openai,
        anthropic,
        gemini,
        openrouter,
        mistral,
        groq,
        exa,
        copilotkit,
        openai_compatible,
    )
}
CHOICES = [(slug, provider.label) for slug, provider in PROVIDERS.items()]


def get_provider(slug: str) -> Provider:
    """The provider named ``slug`` (``KeyError`` if there is none)."""
    return PROVIDERS[slug]


__all__ = ["CHOICES", "PROVIDERS", "Check", "Provider", "get_provider"]
