"""Catalog filters and sorts, applied to (provider, model) offers.

One implementation serves the page, the API and the backup fallback, so every filter
means the same everywhere. Prices in filters are USD per million tokens.
"""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from models_catalog import payloads

MILLION = Decimal(1_000_000)
SORTS = {
    "featured": "Featured, then name",
    "price": "Price (lowest first)",
    "context": "Context (largest first)",
    "newest": "Newest first",
    "name": "Name",
}
Entry = dict[str, Any]


@dataclass(frozen=True)
class Offer:
    """One provider serving one model, with the values filters and sorts need."""

    provider: Entry
    model: Entry
    prompt_price: Decimal | None
    completion_price: Decimal | None
    context: int | None
    created: int
    parameters: frozenset[str]
    locations: frozenset[str]
    policy: str
    text: str

    @classmethod
    def build(cls, provider: Entry, model: Entry) -> "Offer":
        endpoint = model.get("endpoint") or {}
        pricing = endpoint.get("pricing") or model.get("pricing") or {}
        where = model.get("id", "?")
        locations = {*(provider.get("datacenters") or []), provider.get("headquarters") or ""}
        return cls(
            provider=provider,
            model=model,
            prompt_price=payloads.price(pricing.get("prompt"), where=where),
            completion_price=payloads.price(pricing.get("completion"), where=where),
            context=endpoint.get("context_length") or model.get("context_length"),
            created=model.get("created") or 0,
            parameters=frozenset(
                endpoint.get("supported_parameters") or model.get("supported_parameters") or []
            ),
            locations=frozenset(code for code in locations if code),
            policy=(provider.get("data_policy") or {}).get("policy") or "unknown",
            text=" ".join(
                str(value or "")
                for value in (model.get("id"), model.get("name"), provider.get("name"))
            ).lower(),
        )

    @property
    def pricing(self) -> Entry:
        """The per-token prices as published (``"-1"``: varies, as for routers)."""
        endpoint = self.model.get("endpoint") or {}
        return endpoint.get("pricing") or self.model.get("pricing") or {}

    @property
    def prompt_per_million(self) -> Decimal | None:
        return None if self.prompt_price is None else self.prompt_price * MILLION

    @property
    def completion_per_million(self) -> Decimal | None:
        return None if self.completion_price is None else self.completion_price * MILLION


@dataclass(frozen=True)
class CatalogFilters:
    providers: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    data_policies: tuple[str, ...] = ()
    max_prompt_price: Decimal | None = None
    max_completion_price: Decimal | None = None
    min_context: int | None = None
    input_modalities: tuple[str, ...] = ()
    output_modalities: tuple[str, ...] = ()
    supports: tuple[str, ...] = ()
    q: str = ""
    sort: str = "featured"

    def cache_key(self) -> str:
        raw = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    def matches(self, offer: Offer) -> bool:
        model = offer.model
        architecture = model.get("architecture") or {}
        checks = (
            not self.providers or offer.provider.get("slug") in self.providers,
            not self.locations or bool(offer.locations.intersection(self.locations)),
            not self.data_policies or offer.policy in self.data_policies,
            self.max_prompt_price is None
            or (
                offer.prompt_price is not None
                and offer.prompt_price * MILLION <= self.max_prompt_price
            ),
            self.max_completion_price is None
            or (
                offer.completion_price is not None
                and offer.completion_price * MILLION <= self.max_completion_price
            ),
            self.min_context is None or (offer.context or 0) >= self.min_context,
            set(self.input_modalities) <= set(architecture.get("input_modalities") or []),
            set(self.output_modalities) <= set(architecture.get("output_modalities") or []),
            set(self.supports) <= offer.parameters,
            not self.q or all(word in offer.text for word in self.q.lower().split()),
        )
        return all(checks)

    def apply(self, offers: Iterable[Offer]) -> list[Offer]:
        return sort_offers([offer for offer in offers if self.matches(offer)], self.sort)


def default_sort(offers: Iterable[Offer]) -> str:
    """The Models page's order when none is chosen: featured first once operators feature
    models; until then newest first (featuring nothing, "featured" is just A to Z)."""
    return "featured" if any(offer.model.get("featured") for offer in offers) else "newest"


def _price_key(price: Decimal | None) -> tuple[int, Decimal]:
    return (0, price) if price is not None else (1, Decimal(0))


def sort_offers(offers: list[Offer], sort: str) -> list[Offer]:
    """Sort offers; ties (and the default) fall back to featured first, then name."""
    offers = sorted(
        offers, key=lambda o: (str(o.model.get("name", "")).lower(), o.provider["slug"])
    )
    if sort in ("featured", "name"):
        if sort == "featured":
            offers.sort(key=lambda o: not o.model.get("featured"))
    elif sort == "price":
        offers.sort(key=lambda o: _price_key(o.prompt_price))
    elif sort == "context":
        offers.sort(key=lambda o: -(o.context or 0))
    elif sort == "newest":
        offers.sort(key=lambda o: -o.created)
    return offers
