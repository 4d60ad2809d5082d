"""User preferences (allowed models and providers, the assistant's model) and operator
actions on models."""

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Q

from core.errors import ApplicationError
from models_catalog.models import CatalogPreference, Model, Provider
from models_catalog.services.sync import catalog_cache_invalidate


def _preference(user: Any) -> CatalogPreference:
    preference, _ = CatalogPreference.objects.get_or_create(user=user)
    return preference


def preference_model_allow(*, user: Any, model: Model, allowed: bool) -> CatalogPreference:
    """Add a model to (or remove it from) the user's allowed models."""
    preference = _preference(user)
    if allowed:
        preference.allowed_models.add(model)
    else:
        preference.allowed_models.remove(model)
        if preference.preferred_model_id == model.pk:
            preference.preferred_model = None
    preference.save()
    return preference


def preference_provider_allow(*, user: Any, provider: Provider, allowed: bool) -> CatalogPreference:
    """Allow (or stop allowing) every model a provider serves."""
    preference = _preference(user)
    if allowed:
        preference.allowed_providers.add(provider)
    else:
        preference.allowed_providers.remove(provider)
    preference.save()
    return preference


def preference_preferred_set(*, user: Any, model: Model | None) -> CatalogPreference:
    """Choose the model the assistant uses; it must be allowed if the user restricts models."""
    preference = _preference(user)
    if model is not None:
        restricted = preference.allowed_models.exists() or preference.allowed_providers.exists()
        allowed = (
            preference.allowed_models.filter(pk=model.pk).exists()
            or model.endpoints.filter(
                Q(provider__in=preference.allowed_providers.all()), is_active=True
            ).exists()
        )
        if restricted and not allowed:
            raise ApplicationError(
                f"{model.name} is not in your allowed models. Allow it first.",
                code="model_not_allowed",
            )
        if not model.is_active or model.disabled:
            raise ApplicationError(f"{model.name} is no longer offered.", code="model_inactive")
    preference.preferred_model = model
    preference.save()
    return preference


@transaction.atomic
def preferences_replace(
    *,
    user: Any,
    allowed_models: list[str],
    allowed_providers: list[str],
    preferred_model: str | None,
) -> CatalogPreference:
    """Set all of a user's catalog preferences at once (OpenRouter ids, provider slugs).

    Unknown ids or slugs are a validation error naming them; nothing is changed then."""
    models = {m.openrouter_id: m for m in Model.objects.filter(openrouter_id__in=allowed_models)}
    providers = {p.slug: p for p in Provider.objects.filter(slug__in=allowed_providers)}
    fields: dict[str, list[str]] = {}
    if missing := sorted(set(allowed_models) - set(models)):
        fields["allowed_models"] = [f"Unknown model: {model_id}" for model_id in missing]
    if missing := sorted(set(allowed_providers) - set(providers)):
        fields["allowed_providers"] = [f"Unknown provider: {slug}" for slug in missing]
    preferred = (
        Model.objects.filter(openrouter_id=preferred_model).first() if preferred_model else None
    )
    if preferred_model and preferred is None:
        fields["preferred_model"] = [f"Unknown model: {preferred_model}"]
    if fields:
        raise ApplicationError(
            "Some preferences are not valid.", code="validation_error", fields=fields
        )
    preference = _preference(user)
    preference.allowed_models.set(models.values())
    preference.allowed_providers.set(providers.values())
    preference.preferred_model = None
    preference.save()
    return preference_preferred_set(user=user, model=preferred)


def models_feature(*, models: Iterable[Model], featured: bool) -> int:
    """Operator action: feature models (shown first) or stop featuring them."""
    count = Model.objects.filter(pk__in=[m.pk for m in models]).update(is_featured=featured)
    catalog_cache_invalidate()
    return count


def models_disable(*, models: Iterable[Model], disabled: bool) -> int:
    """Operator action: hide models from users (or show them again); syncs keep this."""
    count = Model.objects.filter(pk__in=[m.pk for m in models]).update(disabled=disabled)
    catalog_cache_invalidate()
    return count
