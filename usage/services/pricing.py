"""Prices of tokens from the model catalog, for usage whose cost no provider reported.

The catalog holds OpenRouter ids (``openai/gpt-4o-mini``); providers name their models
their own way (``gpt-4o-mini-2024-07-18``, ``claude-sonnet-4-5-20250929``), so each
(provider, model) tries a few spellings, most exact first.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.core.cache import cache

from models_catalog.selectors import catalog_offers

logger = logging.getLogger(__name__)

MICROS_PER_USD = Decimal(1_000_000)
# Our provider slugs (keys/providers) → the author part of OpenRouter ids.
VENDORS = {"openai": "openai", "anthropic": "anthropic", "gemini": "google", "mistral": "mistralai"}
DATE_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")
VERSION_DASH = re.compile(r"(?<=\d)-(?=\d(?:-|$))")  # claude-sonnet-4-5 → claude-sonnet-4.5
# Looking up this many spellings one by one costs more than reading the whole catalog once.
ONE_BY_ONE = 4
# How long a looked-up price (or its absence) is remembered in the shared cache. Every
# usage fetch of every key prices the same few models, and reading the catalog was a
# fifth of a fetch's CPU; catalog prices change only when it syncs (daily), so a price a
# sync changed is used from at most this long afterwards.
PRICE_TTL = 300

Pair = tuple[str, str]

# Prices read from the shared cache, kept in this process until that entry ends (its end
# travels with it) and never longer than PRICE_TTL from their reading, so the bound above
# still holds: the assistant asks for its model's price on every /ask, in the web and
# again in the worker.
_memo: dict[str, tuple[float, float, Price | None]] = {}  # key: (read at, kept until, price)
# Model names come from providers' usage reports too: never more than this many remembered.
MEMO_SIZE = 1024


def price_memo_forget() -> None:
    """Forget the prices this process remembers (tests, after changing the catalog)."""
    _memo.clear()


@dataclass(frozen=True)
class Price:
    """USD per token."""

    prompt: Decimal
    completion: Decimal
    cache_read: Decimal | None = None

    def cost_micros(self, *, input_tokens: int, output_tokens: int, cached_tokens: int) -> int:
        """Micro-dollars for these tokens (cached tokens are part of the input)."""
        cache_price = self.prompt if self.cache_read is None else self.cache_read
        usd = (
            (input_tokens - cached_tokens) * self.prompt
            + cached_tokens * cache_price
            + output_tokens * self.completion
        )
        return int((usd * MICROS_PER_USD).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def candidates(provider: str, model: str) -> list[str]:
    """Catalog ids ``model`` may go by, most exact first."""
    if "/" in model:
        return [model]  # already an OpenRouter id (OpenRouter, or a model named that way)
    vendor = VENDORS.get(provider)
    if vendor is None or not model:
        return []
    undated = DATE_SUFFIX.sub("", model)
    names = [model, undated, VERSION_DASH.sub(".", undated)]
    return [f"{vendor}/{name}" for name in dict.fromkeys(names)]


def _per_token(value: Any) -> Decimal | None:
    # OpenRouter publishes decimal strings; "-1" means the price varies (routers).
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() and amount >= 0 else None


def _price_of(model_entry: dict[str, Any]) -> Price | None:
    pricing = model_entry.get("pricing") or {}
    prompt = _per_token(pricing.get("prompt"))
    completion = _per_token(pricing.get("completion"))
    if prompt is None or completion is None:
        return None
    cache_read = pricing.get("input_cache_read")
    return Price(prompt, completion, None if cache_read is None else _per_token(cache_read))


def _lookup(spellings: dict[Pair, list[str]]) -> dict[str, Price | None]:
    """Catalog prices by id, for the ids the spellings name (those found)."""
    if len({name for names in spellings.values() for name in names}) > ONE_BY_ONE:
        offers, _ = catalog_offers()
        return {o.model["id"]: _price_of(o.model) for o in offers}
    found: dict[str, Price | None] = {}
    for names in spellings.values():
        for name in names:
            offers = [] if name in found else catalog_offers(model_id=name)[0]
            if offers:
                found[name] = _price_of(offers[0].model)
            if name in found:
                break  # the rest are less exact spellings of the same model
    return found


def _remember(key: str, now: float, ends: float, price: Price | None) -> None:
    """Keep ``price`` until its shared entry ``ends``, and never past ``PRICE_TTL`` from
    now: another host's clock running ahead wrote a later end."""
    until = min(ends, now + PRICE_TTL)
    if until <= now:
        return
    if len(_memo) >= MEMO_SIZE:
        _memo.clear()  # rare: read again from the shared cache
    _memo[key] = (now, until, price)


def _remembered(key: str, now: float) -> tuple[Price | None] | None:
    """The price this process keeps for ``key`` (in a tuple: None is a price's absence),
    unless its time is up — or the clock went back since it was read."""
    memo = _memo.get(key)
    if memo is None or not memo[0] <= now < memo[1]:
        return None
    return (memo[2],)


def _cache_key(pair: Pair) -> str:
    # Hashed: a model name may be long or hold characters a cache key should not.
    return "usage:price:" + hashlib.sha256("\0".join(pair).encode()).hexdigest()


def catalog_prices(*, pairs: set[Pair]) -> dict[Pair, Price | None]:
    """The catalog price of each (provider, model); ``None`` (with a warning in the log)
    for a model the catalog does not know or prices per request. Remembered for
    ``PRICE_TTL`` seconds."""
    if not pairs:
        return {}
    keys = {pair: _cache_key(pair) for pair in pairs}
    now = time.time()
    prices: dict[Pair, Price | None] = {}
    for pair, key in keys.items():
        if (kept := _remembered(key, now)) is not None:
            prices[pair] = kept[0]
    unread = [key for pair, key in keys.items() if pair not in prices]
    cached = cache.get_many(unread) if unread else {}
    for pair, key in keys.items():
        if key in cached:
            prices[pair] = cached[key][0]
            if len(cached[key]) > 1:  # (price, when its shared entry expires)
                _remember(key, now, cached[key][1], cached[key][0])
    spellings = {pair: candidates(*pair) for pair in pairs if pair not in prices}
    if spellings:
        known = _lookup(spellings)
        for pair, names in spellings.items():
            prices[pair] = next((known[n] for n in names if known.get(n) is not None), None)
        # In a tuple: a remembered None (no price) is not a miss.
        entries = {keys[pair]: (prices[pair], now + PRICE_TTL) for pair in spellings}
        cache.set_many(entries, PRICE_TTL)
        for key, (price, ends) in entries.items():
            _remember(key, now, ends, price)
    for pair, price in prices.items():
        if price is None:
            logger.warning(
                "No catalog price for %s model %r: its usage is recorded at cost 0", *pair
            )
    return prices
