"""Which key pays for the assistant's model calls, and which model it asks for."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from accounts.models import User
from core.errors import InsufficientCredits, NotConfigured
from keys.access import user_api_key_chosen, user_api_keys
from keys.models import ApiKey
from keys.providers import get_provider
from models_catalog.selectors import preferred_model_for
from usage.services.pricing import Price, catalog_prices

# The user's own keys the assistant can call, in order of preference.
OWN_KEY_PROVIDERS = ("openai", "openrouter")


@dataclass(frozen=True)
class LLMKey:
    """A key to call the model with. ``api_key`` is the user's stored key that pays; None
    means the server's ``OPENAI_API_KEY``, billed to the user's credits."""

    provider: str
    base_url: str
    model: str
    api_key: ApiKey | None
    secret: str = field(repr=False)
    user_host: bool = False  # the base URL was given by the user: connect guarded
    context_tokens: int | None = None  # the model's context window, when the catalog knows
    # The server's key: the catalog's price of ``model``, looked up to allow it (the run's
    # first price then needs no second look-up).
    price: Price | None = None

    @property
    def billed_to_credits(self) -> bool:
        return self.api_key is None


@sensitive_variables("secret")
def llm_key_for(
    *, user: User, reveal: bool = True, chosen: ApiKey | None = None, preloaded: bool = False
) -> LLMKey:
    """The user's own stored OpenAI or OpenRouter key (never an admin key, never one from
    the environment), with its base URL; else the server's key. Neither: a 402 saying what
    to do, raised before any model is called.

    ``reveal=False``: which key it is, without its secret (``secret`` empty): a stored key
    is not opened, so its use is not audited, as where a run is only stored (the worker
    that calls the model opens it); a stored key's model is then left empty (the worker
    names it), the server key's is named, since its price decides whether it may run.

    ``chosen``: the stored key this chose for the user earlier (the run's, read just now
    with it). It is opened as it is, not chosen again, only while nothing the user did
    since can outrank it (``_still_the_answer``); otherwise every key is read again.
    ``preloaded``: ``user`` was read just now with their model preference (see
    ``preferred_model_for``)."""
    usable = chosen if chosen is not None and _still_the_answer(chosen) else None
    with user_api_key_chosen(usable, owner=user) if usable else user_api_keys(user) as keys:
        for provider in OWN_KEY_PROVIDERS:
            api_key = keys.stored_key(provider)  # a stored key only, never the environment
            if api_key is None:
                continue
            base_url = keys.base_url(provider)
            # Guarded unless it is the provider's configured URL.
            user_host = bool(api_key.base_url) or base_url != get_provider(provider).base_url()
            if not reveal:
                # Only which key pays: the model is named by the worker that opens it
                # (one query fewer where a run is stored).
                return LLMKey(
                    provider=provider,
                    base_url=base_url,
                    model="",
                    api_key=api_key,
                    secret="",
                    user_host=user_host,
                )
            secret = keys[provider]
            preferred_id, context = _preference(user, preloaded=preloaded)
            model = model_for(provider=provider, preferred_id=preferred_id)
            return LLMKey(
                provider=provider,
                base_url=base_url,
                model=model,
                api_key=api_key,
                secret=secret,
                user_host=user_host,
                context_tokens=context if _serves(model, preferred_id) else None,
            )
    preferred_id, context = _preference(user, preloaded=preloaded)
    if settings.OPENAI_API_KEY:
        model = model_for(provider="openai", preferred_id=preferred_id)
        price = _require_price(model)
        return LLMKey(
            provider="openai",
            base_url=settings.OPENAI_BASE_URL,
            model=model,
            api_key=None,
            secret=settings.OPENAI_API_KEY if reveal else "",
            context_tokens=context if _serves(model, preferred_id) else None,
            price=price,
        )
    # Credits pay for calls on the server's key; without one, only the user's own key helps.
    raise InsufficientCredits(
        "The assistant needs a model key: add your own OpenAI or OpenRouter key under Keys.",
        code="no_llm_key",
    )


def _still_the_answer(chosen: ApiKey) -> bool:
    """Whether ``chosen`` (as read now) answers whatever else the user stored: the default
    outside projects (one per provider) of the provider asked first. A key replaced as the
    default, one a second key made ambiguous, or one a key of an earlier provider would
    outrank, is chosen again."""
    return (
        chosen.is_default and chosen.project_id is None and chosen.provider == OWN_KEY_PROVIDERS[0]
    )


def _preference(user: User, *, preloaded: bool = False) -> tuple[str, int | None]:
    """The user's preferred catalog model id ("" for none) and its context length."""
    preferred = preferred_model_for(user=user, preloaded=preloaded)
    if preferred is None:
        return "", None
    return preferred.openrouter_id, preferred.context_length


def _require_price(model: str) -> Price:
    """Calls on the server's key are charged at the catalog's price: a model the catalog
    cannot price would run for free, so it is refused before any call. Its price."""
    price = catalog_prices(pairs={("openai", model)})[("openai", model)]
    if price is None:
        raise NotConfigured(
            f"The assistant cannot use Kay's key with {model} yet. Add your own OpenAI or "
            "OpenRouter key under Keys to use the assistant now.",
            operator_hint=f"The model catalog has no price for {model}: run "
            "`manage.py sync_models`, or set OPENAI_MODEL to a model the catalog prices.",
            code="model_not_priced",
        )
    return price


def model_for(*, provider: str, preferred_id: str) -> str:
    """The user's preferred catalog model when this provider serves it, else OPENAI_MODEL.

    Catalog ids are OpenRouter's (``openai/gpt-4o``): OpenRouter takes them as they are,
    OpenAI only its own models, without the prefix."""
    if preferred_id and provider == "openrouter":
        return preferred_id
    if preferred_id.startswith("openai/") and provider == "openai":
        return preferred_id.removeprefix("openai/")
    default = settings.OPENAI_MODEL
    if provider == "openrouter" and "/" not in default:
        return f"openai/{default}"
    return default


def _serves(model: str, preferred_id: str) -> bool:
    """Whether ``model`` is the preferred catalog model (so its context length applies)."""
    return bool(preferred_id) and preferred_id.endswith(model)
