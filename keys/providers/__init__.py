"""The provider registry: one module per provider, in the order the dashboard lists them."""

from __future__ import annotations

from core.errors import ApplicationError
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
from keys.providers.base import PRINTABLE, Check, Provider

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


class UnknownProvider(ApplicationError, KeyError):
    """No provider has that slug: a 400 naming the ones there are (never the slug given)."""

    code = "unknown_provider"

    def __init__(self) -> None:
        super().__init__(
            "Unknown provider.", fields={"provider": [f"Choose one of: {', '.join(PROVIDERS)}."]}
        )

    def __str__(self) -> str:
        return self.message


def get_provider(slug: str) -> Provider:
    """The provider named ``slug``, else :class:`UnknownProvider`."""
    try:
        return PROVIDERS[slug]
    except KeyError:
        raise UnknownProvider from None


def key_format_problem(provider: Provider, secret: str) -> str:
    """Why ``secret`` cannot be one of ``provider``'s keys, or "" when it can.

    The message names the expected shape, and the provider the key belongs to when it is
    plainly another one's (an OpenRouter key pasted as OpenAI). It never quotes the key.
    """
    if provider.matches_format(secret):
        return ""
    if PRINTABLE.fullmatch(secret) is None:
        return "A key is one line of printable characters (letters, digits, symbols), no spaces."
    owners = [
        other
        for other in PROVIDERS.values()
        if other is not provider and other.has_prefix and other.matches_format(secret)
    ]
    if len(owners) == 1:
        return (
            f"This looks like {owners[0].a_key}, not {provider.a_key}: choose "
            f"{owners[0].label} as the provider."
        )
    return f"This is not {provider.a_key}: {provider.hint[0].lower()}{provider.hint[1:]}"


__all__ = [
    "CHOICES",
    "PROVIDERS",
    "Check",
    "Provider",
    "UnknownProvider",
    "get_provider",
    "key_format_problem",
]
