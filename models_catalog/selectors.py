"""Reads from the catalog: offers (from the tables, or the backup snapshot), the
models-by-provider document, page rows, filter choices and user preferences."""

import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from django.db import DatabaseError
from django.db.models import Q
from django.utils.safestring import SafeString

from core.prepared import PreparedQuery, first_row
from models_catalog import descriptions, payloads, snapshot
from models_catalog.filters import CatalogFilters, Offer
from models_catalog.models import (
    CatalogPreference,
    DataPolicy,
    Model,
    ModelEndpoint,
    Provider,
    SyncRun,
)

logger = logging.getLogger(__name__)

Entry = dict[str, Any]
# Columns the documents never show: skipping them makes the one catalog query cheaper.
UNUSED_FIELDS = [
    "fingerprint", "first_seen", "last_seen", "prompt_price", "completion_price",
    *(f"model__{name}" for name in (
        "fingerprint", "first_seen", "last_seen", "prompt_price", "completion_price",
        "request_price", "image_price", "cache_read_price", "cache_write_price",
    )),
    *(f"provider__{name}" for name in ("fingerprint", "first_seen", "last_seen", "listed")),
]  # fmt: skip


def catalog_offers_from_db(*, model_id: str | None = None) -> list[tuple[Entry, Entry]]:
    """Every active (provider, model) pair (or one model's), in one query whatever the
    catalog's size."""
    rows = (
        ModelEndpoint.objects.filter(is_active=True, model__is_active=True, model__disabled=False)
        .select_related("model", "provider")
        .defer(*UNUSED_FIELDS)
        .order_by("provider__name", "model__name", "tag")
    )
    if model_id is not None:
        rows = rows.filter(model__openrouter_id=model_id)
    providers: dict[int, Entry] = {}
    offers = []
    for row in rows:
        provider = providers.get(row.provider_id)
        if provider is None:
            provider = providers[row.provider_id] = snapshot.provider_entry(row.provider)
        offers.append((provider, snapshot.model_entry(row.model, row)))
    return offers


@lru_cache(maxsize=4)
def _backup_offers(path: str, mtime: float) -> list[Offer]:
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    return [Offer.build(p, m) for p, m in snapshot.document_offers(document)]


def backup_offers(path: Path | None = None) -> list[Offer]:
    """The shipped snapshot's offers, parsed once per file version."""
    target = Path(path or snapshot.BACKUP_PATH)
    return _backup_offers(str(target), target.stat().st_mtime)


def _catalog_is_empty() -> bool:
    # Empty means never loaded: a catalog whose models were all hidden by operators or
    # dropped by OpenRouter is not replaced by the snapshot.
    return not ModelEndpoint.objects.exists()


def catalog_offers(*, model_id: str | None = None) -> tuple[list[Offer], str]:
    """All offers (or one model's) and where they came from: ``"database"``, or
    ``"backup"`` when the tables are empty or cannot be read (seed 000's fallback)."""
    try:
        pairs = catalog_offers_from_db(model_id=model_id)
        if not pairs and not _catalog_is_empty():
            return [], "database"
    except DatabaseError:
        logger.warning("Catalog tables unreadable; serving the backup snapshot", exc_info=True)
        pairs = []
    if pairs:
        return [Offer.build(p, m) for p, m in pairs], "database"
    offers = backup_offers()
    if model_id is not None:
        offers = [o for o in offers if o.model["id"] == model_id]
    return offers, "backup"


def models_by_provider(*, filters: CatalogFilters) -> dict[str, Any]:
    """The API document for a filter set: providers with the models they serve."""
    offers, source = catalog_offers()
    matching = filters.apply(offers)
    return snapshot.offers_to_document([(o.provider, o.model) for o in matching], source=source)


@dataclass
class ModelRow:
    """A model on the Models page with the offers that matched the filters."""

    model: Entry
    offers: list[Offer]

    @property
    def id(self) -> str:
        return str(self.model["id"])

    @property
    def cheapest(self) -> Offer:
        priced = [o for o in self.offers if o.prompt_price is not None]
        return min(priced, key=lambda o: o.prompt_price or Decimal(0)) if priced else self.offers[0]

    @property
    def context(self) -> int | None:
        return max((o.context or 0 for o in self.offers), default=0) or None

    @property
    def provider_names(self) -> list[str]:
        return sorted({o.provider["name"] for o in self.offers})

    @property
    def has_unknown_policy(self) -> bool:
        return any(o.policy == DataPolicy.UNKNOWN for o in self.offers)

    @property
    def has_inferred(self) -> bool:
        return any((o.model.get("endpoint") or {}).get("inferred") for o in self.offers)

    @property
    def capabilities(self) -> list[str]:
        params = set().union(*(o.parameters for o in self.offers))
        return [name for name in payloads.CAPABILITIES if name in params]


def catalog_model_rows(*, filters: CatalogFilters, offers: list[Offer]) -> list[ModelRow]:
    """Models with at least one matching offer, in the filters' sort order."""
    rows: dict[str, ModelRow] = {}
    for offer in filters.apply(offers):
        model_id = offer.model["id"]
        if model_id in rows:
            rows[model_id].offers.append(offer)
        else:
            rows[model_id] = ModelRow(model=offer.model, offers=[offer])
    return list(rows.values())


def catalog_model_detail(*, model_id: str) -> ModelRow | None:
    """One model with every provider serving it, cheapest first."""
    found, _ = catalog_offers(model_id=model_id)
    if not found:
        return None
    found.sort(key=lambda o: (o.prompt_price is None, o.prompt_price or 0, o.provider["name"]))
    return ModelRow(model=found[0].model, offers=found)


def catalog_model_ids_known(*, model_ids: set[str]) -> set[str]:
    """Which of these OpenRouter ids have a model page: served by an active endpoint, or
    in the backup snapshot when that is what the pages show."""
    if not model_ids:
        return set()
    try:
        found = set(
            ModelEndpoint.objects.filter(
                model__openrouter_id__in=model_ids,
                is_active=True,
                model__is_active=True,
                model__disabled=False,
            ).values_list("model__openrouter_id", flat=True)
        )
        if found or not _catalog_is_empty():
            return found
    except DatabaseError:
        logger.warning("Catalog tables unreadable; checking the backup snapshot", exc_info=True)
    return {o.model["id"] for o in backup_offers()} & model_ids


def catalog_model_description(*, model: Entry) -> SafeString:
    """A model's description as sanitised HTML, its links to OpenRouter models pointing at
    our model pages (one query, only when it links to models)."""
    return descriptions.description_html(
        str(model.get("description") or ""),
        known_models=lambda ids: catalog_model_ids_known(model_ids=ids),
    )


def catalog_filter_choices(*, offers: list[Offer]) -> dict[str, list[tuple[str, str]]]:
    """Choices for the page's filter form, from what the catalog actually holds.

    Providers are listed by name, once each: two slugs with one name (OpenRouter's
    ``meta-llama`` and ``meta`` are both "Meta") are one choice whose value names both."""
    by_name: dict[str, tuple[str, set[str]]] = {}
    for o in offers:
        name = o.provider["name"]
        by_name.setdefault(name.casefold(), (name, set()))[1].add(o.provider["slug"])
    providers = {",".join(sorted(slugs)): name for name, slugs in by_name.values()}
    locations = sorted({code for o in offers for code in o.locations})
    inputs = sorted({m for o in offers for m in o.model["architecture"]["input_modalities"]})
    outputs = sorted({m for o in offers for m in o.model["architecture"]["output_modalities"]})
    return {
        "providers": sorted(providers.items(), key=lambda item: item[1].lower()),
        "locations": [(code, code) for code in locations],
        "data_policies": [(value, str(label)) for value, label in DataPolicy.choices],
        "input_modalities": [(m, m) for m in inputs],
        "output_modalities": [(m, m) for m in outputs],
    }


def catalog_last_sync() -> SyncRun | None:
    """The latest successful sync (from OpenRouter, a file or the snapshot)."""
    return SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED).first()


def catalog_model_get(*, model_id: str) -> Model | None:
    return Model.objects.filter(openrouter_id=model_id).first()


def catalog_provider_get(*, slug: str) -> Provider | None:
    return Provider.objects.filter(slug=slug).first()


# --- Preferences -----------------------------------------------------------------------


@dataclass(frozen=True)
class Preferences:
    allowed_models: frozenset[str]
    allowed_providers: frozenset[str]
    preferred_model: str | None

    @property
    def restricted(self) -> bool:
        return bool(self.allowed_models or self.allowed_providers)

    def allows(self, row: ModelRow) -> bool:
        if not self.restricted:
            return True
        return row.id in self.allowed_models or any(
            o.provider["slug"] in self.allowed_providers for o in row.offers
        )


def preferences_for(*, user: Any) -> Preferences:
    """The user's allowed model ids and provider slugs, and preferred model id."""
    preference = (
        CatalogPreference.objects.filter(user=user)
        .select_related("preferred_model")
        .prefetch_related("allowed_models", "allowed_providers")
        .first()
    )
    if preference is None:
        return Preferences(frozenset(), frozenset(), None)
    return Preferences(
        frozenset(m.openrouter_id for m in preference.allowed_models.all()),
        frozenset(p.slug for p in preference.allowed_providers.all()),
        preference.preferred_model.openrouter_id if preference.preferred_model else None,
    )


def allowed_model_ids_for(*, user: Any) -> set[str] | None:
    """OpenRouter ids the user allows, or None when they allow everything."""
    preferences = preferences_for(user=user)
    if not preferences.restricted:
        return None
    allowed = Q(openrouter_id__in=preferences.allowed_models) | Q(
        endpoints__provider__slug__in=preferences.allowed_providers, endpoints__is_active=True
    )
    return set(
        Model.objects.filter(allowed, is_active=True, disabled=False).values_list(
            "openrouter_id", flat=True
        )
    )


# Read on every assistant run: compiled once (core.prepared).
_PREFERENCE: PreparedQuery[CatalogPreference] = PreparedQuery(
    lambda user_id: first_row(
        CatalogPreference.objects.filter(user_id=user_id).select_related("preferred_model")
    )
)


def preferred_model_for(*, user: Any, preloaded: bool = False) -> Model | None:
    """The model the assistant should use for this user (None: use the server default).

    A preferred model that was deactivated or is no longer allowed is ignored.
    ``preloaded``: ``user`` was read just now with
    ``select_related("catalog_preference__preferred_model")``, so that is used (no query);
    otherwise the preference is read, never taken from an older cached access."""
    related = CatalogPreference.user.field.remote_field  # the user's reverse accessor
    if preloaded and related.is_cached(user):
        preference = cast(CatalogPreference | None, related.get_cached_value(user))
    else:
        preference = _PREFERENCE.first(user_id=getattr(user, "pk", user))
    model = preference.preferred_model if preference else None
    if model is None or not model.is_active or model.disabled:
        return None
    allowed = allowed_model_ids_for(user=user)
    if allowed is not None and model.openrouter_id not in allowed:
        return None
    return model
