"""The Models pages: find a model (filters update the results through htmx), see one
model's providers, and choose allowed and preferred models."""

from dataclasses import replace
from datetime import UTC, datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from core.errors import ApplicationError
from core.views import redirect_back
from models_catalog import selectors, services
from models_catalog.filters import SORTS, CatalogFilters, default_sort
from models_catalog.forms import CatalogFilterForm
from models_catalog.models import Model, Provider
from models_catalog.payloads import CAPABILITIES

PAGE_SIZE = 50


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


CONTEXT_CHOICES = [
    (8_000, "8K+"),
    (32_000, "32K+"),
    (128_000, "128K+"),
    (200_000, "200K+"),
    (1_000_000, "1M+"),
]


def _get_model(model_id: str) -> Model:
    model = selectors.catalog_model_get(model_id=model_id)
    if model is None:
        raise Http404("No such model")
    return model


def _get_provider(slug: str) -> Provider:
    provider = selectors.catalog_provider_get(slug=slug)
    if provider is None:
        raise Http404("No such provider")
    return provider


@login_required
@require_GET
def model_list(request: HtmxHttpRequest) -> HttpResponse:
    form = CatalogFilterForm(request.GET)
    # Invalid filters are shown with their errors; the results then ignore all filters.
    filters = form.filters() if form.is_valid() else _default_filters()
    preferences = selectors.preferences_for(user=request.user)
    allowed_only = request.GET.get("allowed") == "1"
    offers, source = selectors.catalog_offers()
    selected = form.cleaned_data if form.is_valid() else {}
    default = default_sort(offers)
    sort = selected.get("sort") or default
    filters = replace(filters, sort=sort)
    rows = selectors.catalog_model_rows(filters=filters, offers=offers)
    if allowed_only:
        rows = [row for row in rows if preferences.allows(row)]
    # Filtering on one provider offers to allow all its models at once.
    one_provider = next(
        (o.provider for o in offers if filters.providers == (o.provider["slug"],)), None
    )
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "count": len(rows),
        "source": source,
        "preferences": preferences,
        "allowed_only": allowed_only,
        "one_provider": one_provider,
        "query": query.urlencode(),
    }
    if request.htmx and request.htmx.target == "results":
        return render(request, "models_catalog/_results.html", context)
    context.update(
        choices=selectors.catalog_filter_choices(offers=offers),
        # "Featured first" is offered once something is featured.
        sorts={
            key: label
            for key, label in SORTS.items()
            if key != "featured" or "featured" in (sort, default)
        },
        sort=sort,
        context_choices=CONTEXT_CHOICES,
        supports=CAPABILITIES,
        selected=selected,
        # The provider choice's value: slugs sharing a name are one choice ("meta,meta-llama").
        provider_value=",".join(sorted(selected.get("provider") or ())),
        last_sync=selectors.catalog_last_sync(),
    )
    return render(request, "models_catalog/list.html", context)


def _default_filters() -> CatalogFilters:
    form = CatalogFilterForm({})
    form.is_valid()
    return form.filters()


@login_required
@require_GET
def model_detail(request: HttpRequest, model_id: str) -> HttpResponse:
    row = selectors.catalog_model_detail(model_id=model_id)
    if row is None:
        raise Http404("No such model")
    preferences = selectors.preferences_for(user=request.user)
    created = row.model.get("created")
    return render(
        request,
        "models_catalog/detail.html",
        {
            "row": row,
            "model": row.model,
            "created": datetime.fromtimestamp(created, tz=UTC) if created else None,
            "description": selectors.catalog_model_description(model=row.model),
            "preferences": preferences,
        },
    )


@login_required
@require_POST
def model_allow(request: HtmxHttpRequest, model_id: str) -> HttpResponse:
    model = _get_model(model_id)
    allowed = request.POST.get("allowed") == "1"
    services.preference_model_allow(user=request.user, model=model, allowed=allowed)
    if request.htmx:
        preferences = selectors.preferences_for(user=request.user)
        return render(
            request,
            "models_catalog/_allow_button.html",
            {"model_id": model.openrouter_id, "preferences": preferences},
        )
    verb = "allowed" if allowed else "no longer allowed"
    messages.success(request, f"{model.name} is {verb}.")
    return redirect_back(request, reverse("models_catalog:detail", args=[model.openrouter_id]))


@login_required
@require_POST
def provider_allow(request: HttpRequest, slug: str) -> HttpResponse:
    provider = _get_provider(slug)
    allowed = request.POST.get("allowed") == "1"
    services.preference_provider_allow(user=request.user, provider=provider, allowed=allowed)
    verb = "are allowed" if allowed else "are no longer allowed as a whole"
    messages.success(request, f"All models served by {provider.name} {verb}.")
    return redirect_back(request, reverse("models_catalog:list"))


@login_required
@require_POST
def model_prefer(request: HttpRequest, model_id: str) -> HttpResponse:
    model = _get_model(model_id)
    clear = request.POST.get("clear") == "1"
    try:
        services.preference_preferred_set(user=request.user, model=None if clear else model)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        if clear:
            messages.success(request, "The assistant will use the default model.")
        else:
            messages.success(request, f"The assistant will use {model.name}.")
    return redirect_back(request, reverse("models_catalog:detail", args=[model.openrouter_id]))
