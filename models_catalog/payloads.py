"""Validate and normalise OpenRouter catalog payloads into field values for our tables.

Pure functions, no database. Unknown fields are ignored (and every price component is
kept in ``pricing``); missing optional fields get defaults; a malformed payload raises
:class:`CatalogPayloadError` before anything is written. A model, provider or endpoint
whose id is not of the safe shape below is skipped and logged, and the rest is used.
"""

import hashlib
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.text import slugify

from core.errors import ProviderError

logger = logging.getLogger(__name__)

# First-party provider of a model author, where OpenRouter's slugs differ.
AUTHOR_PROVIDERS = {
    "qwen": "alibaba",
    "google": "google-ai-studio",
    "mistralai": "mistral",
    "x-ai": "xai",
    "bytedance-seed": "seed",
    "amazon": "amazon-nova",
    "rekaai": "reka",
}
# What a model can do, as OpenRouter's ``supported_parameters`` names it, with the label
# the filters and pages show: the document's ``capabilities`` and the "supports" filter.
CAPABILITIES = {
    "tools": "Tools",
    "structured_outputs": "Structured outputs",
    "reasoning": "Reasoning",
}

Fields = dict[str, Any]
# The largest values our columns hold: a price has 9 digits before the point
# (max_digits=24, decimal_places=15), a token count is a 32-bit integer on PostgreSQL.
MAX_PRICE = Decimal(10**9)
MAX_INT = 2**31 - 1
# Ids go into URLs and pages: one id with a newline made every Models page a 500. Real
# ones look like "openai/gpt-4o", "openai/gpt-4o:batch", "~anthropic/claude-sonnet-latest"
# and provider slugs like "google-vertex"; nothing else is accepted.
SAFE_MODEL_ID = re.compile(r"~?[A-Za-z0-9][\w.:-]*(?:/[A-Za-z0-9][\w.:-]*)?", re.ASCII)
SAFE_PROVIDER_SLUG = re.compile(r"[A-Za-z0-9][\w.-]*", re.ASCII)
MAX_ID_LENGTH = 200
MAX_SLUG_LENGTH = 100


class CatalogPayloadError(ProviderError):
    code = "catalog_payload_invalid"


class UnsafeId(CatalogPayloadError):
    """An id we will not put in a URL or a page; the entry is skipped, not the payload."""

    code = "catalog_unsafe_id"


def _safe(value: Any, pattern: re.Pattern[str], limit: int, what: str) -> str:
    if isinstance(value, str) and len(value) <= limit and pattern.fullmatch(value):
        return value
    # repr() keeps a newline in the id from starting a new log line.
    raise UnsafeId(f"{what} {str(value)[:80]!r} is not a safe id")


def _skipping_unsafe(entries: list[Any], parse: Callable[[Any], Fields]) -> list[Fields]:
    parsed = []
    for entry in entries:
        try:
            parsed.append(parse(entry))
        except UnsafeId as exc:
            logger.warning("Skipped an OpenRouter entry: %s", exc.message)
    return parsed


def fingerprint(fields: Fields) -> str:
    """A stable hash of normalised field values: equal data, equal fingerprint."""
    raw = json.dumps(fields, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


def price(value: Any, *, where: str) -> Decimal | None:
    """A per-token USD price; ``None`` when absent or variable (OpenRouter's ``-1``)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise CatalogPayloadError(f"{where}: price {value!r} is not a number")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise CatalogPayloadError(f"{where}: price {value!r} is not a number") from None
    if not amount.is_finite():
        raise CatalogPayloadError(f"{where}: price {value!r} is not a number")
    if amount < 0:
        return None
    if amount >= MAX_PRICE:
        raise CatalogPayloadError(f"{where}: price {value!r} is out of range")
    return amount.quantize(Decimal("1e-15")).normalize() if amount else Decimal(0)


def price_text(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _int(value: Any, *, where: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise CatalogPayloadError(f"{where}: {value!r} is not a whole number")
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise CatalogPayloadError(f"{where}: {value!r} is not a whole number") from None
    if number > MAX_INT:
        raise CatalogPayloadError(f"{where}: {value!r} is out of range")
    return number if number >= 0 else None


def _text(value: Any, limit: int | None = None) -> str:
    text = "" if value is None else str(value)
    return text[:limit] if limit else text


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return sorted({str(item) for item in value if isinstance(item, str | int)})


def _items(body: Any, what: str) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise CatalogPayloadError(f"The {what} payload has no 'data' list")
    return body["data"]


def _pricing(raw: Any, where: str) -> tuple[Fields, dict[str, Any]]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise CatalogPayloadError(f"{where}: 'pricing' is not an object")
    parsed = {
        "prompt_price": price(raw.get("prompt"), where=where),
        "completion_price": price(raw.get("completion"), where=where),
    }
    extra = {
        "request_price": price(raw.get("request"), where=where),
        "image_price": price(raw.get("image"), where=where),
        "cache_read_price": price(raw.get("input_cache_read"), where=where),
        "cache_write_price": price(raw.get("input_cache_write"), where=where),
    }
    kept = {key: value for key, value in raw.items() if isinstance(value, str | int | float | list)}
    return {**parsed, **extra}, kept


def _created(value: Any, where: str) -> datetime | None:
    seconds = _int(value, where=f"{where} created")
    return datetime.fromtimestamp(seconds, tz=UTC) if seconds else None


def parse_model(item: Any) -> Fields:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
        raise CatalogPayloadError(f"A model entry has no 'id': {str(item)[:80]!r}")
    model_id = _safe(item["id"], SAFE_MODEL_ID, MAX_ID_LENGTH, "Model id")
    architecture = item.get("architecture") or {}
    top = item.get("top_provider") or {}
    if not isinstance(architecture, dict) or not isinstance(top, dict):
        raise CatalogPayloadError(f"{model_id}: 'architecture'/'top_provider' is not an object")
    prices, pricing = _pricing(item.get("pricing"), model_id)
    author = model_id.split("/", 1)[0] if "/" in model_id else "openrouter"
    moderated = top.get("is_moderated")
    return {
        "openrouter_id": model_id,
        "canonical_slug": _text(item.get("canonical_slug"), 200),
        "author": author[:100],
        "name": _text(item.get("name") or model_id, 300),
        "description": _text(item.get("description")),
        "hugging_face_id": _text(item.get("hugging_face_id"), 300),
        "created": _created(item.get("created"), model_id),
        "context_length": _int(item.get("context_length"), where=f"{model_id} context_length"),
        "modality": _text(architecture.get("modality"), 100),
        "input_modalities": _strings(architecture.get("input_modalities")),
        "output_modalities": _strings(architecture.get("output_modalities")),
        "tokenizer": _text(architecture.get("tokenizer"), 100),
        **prices,
        "pricing": pricing,
        "supported_parameters": _strings(item.get("supported_parameters")),
        "top_context_length": _int(top.get("context_length"), where=f"{model_id} top context"),
        "top_max_completion_tokens": _int(
            top.get("max_completion_tokens"), where=f"{model_id} max_completion_tokens"
        ),
        "is_moderated": moderated if isinstance(moderated, bool) else None,
    }


def parse_models(body: Any) -> list[Fields]:
    """Every model of a ``GET /models`` body, validated as a whole (last duplicate wins);
    models with an unsafe id are skipped."""
    parsed = {
        fields["openrouter_id"]: fields
        for fields in _skipping_unsafe(_items(body, "models"), parse_model)
    }
    if not parsed:
        raise CatalogPayloadError("The models payload lists no models")
    return list(parsed.values())


def _country(value: Any) -> str:
    return value.strip().upper()[:8] if isinstance(value, str) else ""


def parse_provider(item: Any) -> Fields:
    if not isinstance(item, dict) or not (item.get("slug") or item.get("name")):
        raise CatalogPayloadError(f"A provider entry has no 'slug': {str(item)[:80]!r}")
    if item.get("slug"):
        _safe(item["slug"], SAFE_PROVIDER_SLUG, MAX_SLUG_LENGTH, "Provider slug")
    slug = _safe(
        slugify(item.get("slug") or item["name"])[:MAX_SLUG_LENGTH],
        SAFE_PROVIDER_SLUG,
        MAX_SLUG_LENGTH,
        "Provider slug",
    )
    datacenters = item.get("datacenters")
    return {
        "slug": slug,
        "name": _text(item.get("name") or slug, 200),
        "headquarters": _country(item.get("headquarters")),
        "datacenters": sorted({_country(code) for code in datacenters or [] if _country(code)})
        if isinstance(datacenters, list)
        else [],
        "privacy_policy_url": _text(item.get("privacy_policy_url"), 500),
        "terms_of_service_url": _text(item.get("terms_of_service_url"), 500),
        "status_page_url": _text(item.get("status_page_url"), 500),
    }


def parse_providers(body: Any) -> list[Fields]:
    """Every provider of a ``GET /providers`` body; those with an unsafe slug are skipped."""
    providers = _skipping_unsafe(_items(body, "providers"), parse_provider)
    return list({p["slug"]: p for p in providers}.values())


def _uptime(value: Any, *, where: str) -> Decimal | None:
    """A percentage; anything outside 0-100 is not an uptime we can show."""
    uptime = price(value, where=f"{where} uptime")
    return uptime if uptime is not None and uptime <= 100 else None


def parse_endpoint(item: Any, model_id: str) -> Fields:
    """One entry of ``data.endpoints``, with the provider it names (``provider_slug``)."""
    if not isinstance(item, dict):
        raise CatalogPayloadError(f"{model_id}: an endpoint is not an object")
    tag = _text(item.get("tag")) or slugify(item.get("provider_name") or item.get("name") or "")
    if not tag:
        raise CatalogPayloadError(f"{model_id}: an endpoint names no provider")
    provider_slug = slugify(
        _safe(tag.split("/", 1)[0], SAFE_PROVIDER_SLUG, MAX_SLUG_LENGTH, f"{model_id}: provider")
    )[:MAX_SLUG_LENGTH]
    where = f"{model_id} @ {tag}"
    prices, pricing = _pricing(item.get("pricing"), where)
    uptime = item.get("uptime_last_30m")
    status = item.get("status")
    return {
        "provider_slug": provider_slug,
        "provider_name": _text(item.get("provider_name") or tag.split("/", 1)[0], 200),
        "tag": tag[:200],
        "name": _text(item.get("name"), 300),
        "context_length": _int(item.get("context_length"), where=f"{where} context_length"),
        "max_completion_tokens": _int(item.get("max_completion_tokens"), where=where),
        "max_prompt_tokens": _int(item.get("max_prompt_tokens"), where=where),
        "prompt_price": prices["prompt_price"],
        "completion_price": prices["completion_price"],
        "pricing": pricing,
        "quantization": _text(item.get("quantization"), 50),
        "status": status if isinstance(status, int) and not isinstance(status, bool) else None,
        "uptime_last_30m": _uptime(uptime, where=where),
        "supported_parameters": _strings(item.get("supported_parameters")),
        "inferred": False,
    }


def parse_endpoints(body: Any, model_id: str) -> list[Fields]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("endpoints"), list):
        raise CatalogPayloadError(f"{model_id}: the endpoints payload has no 'data.endpoints'")
    endpoints = _skipping_unsafe(data["endpoints"], lambda item: parse_endpoint(item, model_id))
    return list({e["tag"]: e for e in endpoints}.values())


def author_provider_slug(author: str) -> str:
    author = author.lstrip("~")
    return AUTHOR_PROVIDERS.get(author, slugify(author))[:100]


def provider_name_from_slug(slug: str) -> str:
    """A readable name for a provider known only by its slug ("anthracite-org" becomes
    "Anthracite Org"): shown to people, where the bare slug reads as an internal id."""
    return slug.replace("-", " ").title()


def inferred_endpoint(model: Fields) -> Fields:
    """The endpoint a model listing implies: its author's first-party provider, serving it
    at the listed price and top-provider limits. Used only when no /endpoints data exists.
    The provider's name comes from the model's ("Microsoft: Phi 4"), else from its slug."""
    slug = author_provider_slug(model["author"])
    prefix = model["name"].split(":", 1)[0].strip() if ":" in model["name"] else ""
    name = prefix or provider_name_from_slug(slug)
    return {
        "provider_slug": slug,
        "provider_name": name[:200],
        "tag": slug,
        "name": f"{name} | {model['openrouter_id']}"[:300],
        "context_length": model["top_context_length"] or model["context_length"],
        "max_completion_tokens": model["top_max_completion_tokens"],
        "max_prompt_tokens": None,
        "prompt_price": model["prompt_price"],
        "completion_price": model["completion_price"],
        "pricing": model["pricing"],
        "quantization": "",
        "status": None,
        "uptime_last_30m": None,
        "supported_parameters": model["supported_parameters"],
        "inferred": True,
    }
