"""The models-by-provider document: what the API returns and what the backup file holds.

Shape (seed 000): ``{"providers": [{slug, name, headquarters, datacenters, data_policy,
privacy_policy_url, ..., "models": [{id, name, pricing, context_length, architecture,
supported_parameters, capabilities, top_provider, endpoint: {...}}]}], "total_providers",
"total_models", "generated_at", "source"}``. Model entries mirror OpenRouter's model
objects (prices are per-token decimal strings); ``endpoint`` says how that provider serves
the model. The backup file is the same document, so it loads back into the tables.
"""

from datetime import UTC
from pathlib import Path
from typing import Any

from django.utils import timezone

from models_catalog import payloads
from models_catalog.models import DataPolicy, Model, ModelEndpoint, Provider

BACKUP_PATH = Path(__file__).resolve().parent / "data" / "openrouter-models-by-provider-backup.json"

# (trains on prompts, retains prompts) for each curated policy; None = not known.
POLICY_FLAGS: dict[str, tuple[bool | None, bool | None]] = {
    DataPolicy.TRAINS: (True, True),
    DataPolicy.RETAINS: (False, True),
    DataPolicy.ZERO_RETENTION: (False, False),
    DataPolicy.UNKNOWN: (None, None),
}

Entry = dict[str, Any]


def provider_entry(provider: Provider) -> Entry:
    training, retains = POLICY_FLAGS.get(provider.data_policy, (None, None))
    return {
        "slug": provider.slug,
        # Rows an older sync named after the slug ("microsoft") read as internal ids.
        "name": provider.name
        if provider.name != provider.slug
        else payloads.provider_name_from_slug(provider.slug),
        "headquarters": provider.headquarters or None,
        "datacenters": list(provider.datacenters or []),
        "data_policy": {
            "policy": provider.data_policy,
            "training": training,
            "retains_prompts": retains,
        },
        "privacy_policy_url": provider.privacy_policy_url or None,
        "terms_of_service_url": provider.terms_of_service_url or None,
        "status_page_url": provider.status_page_url or None,
    }


def capabilities(parameters: list[str]) -> dict[str, bool]:
    return {name: name in parameters for name in payloads.CAPABILITIES}


def model_entry(model: Model, endpoint: ModelEndpoint) -> Entry:
    """A model as one provider serves it."""
    return {
        "id": model.openrouter_id,
        "canonical_slug": model.canonical_slug or None,
        "name": model.name,
        "author": model.author,
        "description": model.description,
        "hugging_face_id": model.hugging_face_id or None,
        "created": int(model.created.timestamp()) if model.created else None,
        "context_length": model.context_length,
        "architecture": {
            "modality": model.modality or None,
            "input_modalities": list(model.input_modalities or []),
            "output_modalities": list(model.output_modalities or []),
            "tokenizer": model.tokenizer or None,
        },
        "pricing": dict(model.pricing or {}),
        "top_provider": {
            "context_length": model.top_context_length,
            "max_completion_tokens": model.top_max_completion_tokens,
            "is_moderated": model.is_moderated,
        },
        "supported_parameters": list(model.supported_parameters or []),
        "featured": model.is_featured,
        "endpoint": {
            "tag": endpoint.tag,
            "name": endpoint.name or None,
            "context_length": endpoint.context_length,
            "max_completion_tokens": endpoint.max_completion_tokens,
            "max_prompt_tokens": endpoint.max_prompt_tokens,
            "pricing": dict(endpoint.pricing or {}),
            "quantization": endpoint.quantization or None,
            "status": endpoint.status,
            "uptime_last_30m": payloads.price_text(endpoint.uptime_last_30m),
            "supported_parameters": list(endpoint.supported_parameters or []),
            "capabilities": capabilities(list(endpoint.supported_parameters or [])),
            "inferred": endpoint.inferred,
        },
    }


def offers_to_document(
    offers: list[tuple[Entry, Entry]], *, source: str, note: str = ""
) -> dict[str, Any]:
    """Group (provider, model) pairs into the models-by-provider document."""
    providers: dict[str, Entry] = {}
    model_ids: set[str] = set()
    for provider, model in offers:
        group = providers.get(provider["slug"])
        if group is None:
            group = providers[provider["slug"]] = {**provider, "models": []}
        group["models"].append(model)
        model_ids.add(model["id"])
    document: dict[str, Any] = {
        "source": source,
        "generated_at": timezone.now().astimezone(UTC).isoformat(timespec="seconds"),
    }
    if note:
        document["note"] = note
    document.update(
        {
            "total_providers": len(providers),
            "total_models": len(model_ids),
            "providers": list(providers.values()),
        }
    )
    return document


def document_offers(document: Any) -> list[tuple[Entry, Entry]]:
    """The (provider, model) pairs of a document; raises on a malformed one."""
    if not isinstance(document, dict) or not isinstance(document.get("providers"), list):
        raise payloads.CatalogPayloadError("The models-by-provider document has no 'providers'")
    offers = []
    for group in document["providers"]:
        if not isinstance(group, dict) or not isinstance(group.get("models"), list):
            raise payloads.CatalogPayloadError("A provider in the document has no 'models' list")
        provider = {key: value for key, value in group.items() if key != "models"}
        for model in group["models"]:
            if not isinstance(model, dict) or not isinstance(model.get("endpoint"), dict):
                raise payloads.CatalogPayloadError("A model in the document has no 'endpoint'")
            offers.append((provider, model))
    return offers


def document_to_fields(
    document: Any,
) -> tuple[list[Entry], list[Entry], dict[str, list[Entry] | None]]:
    """Model, provider and endpoint field values for the sync's writer."""
    models: dict[str, Entry] = {}
    providers: dict[str, Entry] = {}
    endpoints: dict[str, list[Entry] | None] = {}
    for provider, model in document_offers(document):
        fields = payloads.parse_provider(provider)
        providers[fields["slug"]] = fields
        models[model.get("id") or ""] = payloads.parse_model(model)
        endpoint = payloads.parse_endpoint(
            {**model["endpoint"], "provider_name": fields["name"]}, model["id"]
        )
        endpoint["provider_slug"] = fields["slug"]
        endpoint["inferred"] = bool(model["endpoint"].get("inferred"))
        current = endpoints.setdefault(model["id"], [])
        assert current is not None
        current.append(endpoint)
    return list(models.values()), list(providers.values()), endpoints
