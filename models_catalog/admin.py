"""Operators' console for the catalog: curate providers, deactivate or feature models,
start a sync."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse

from models_catalog import services, tasks
from models_catalog.models import Model, ModelEndpoint, Provider, Synced, SyncRun


class ProviderAdminForm(forms.ModelForm):
    """Country codes stored the way the sync writes them and the filters compare them."""

    class Meta:
        model = Provider
        fields = [
            "name", "data_policy", "headquarters", "datacenters", "location_curated",
            "privacy_policy_url", "terms_of_service_url", "status_page_url",
        ]  # fmt: skip

    def clean_headquarters(self) -> str:
        return str(self.cleaned_data.get("headquarters") or "").strip().upper()

    def clean_datacenters(self) -> list[str]:
        value = self.cleaned_data.get("datacenters") or []
        if not isinstance(value, list) or not all(isinstance(code, str) for code in value):
            raise forms.ValidationError('A list of country codes, e.g. ["US", "DE"].')
        return list(dict.fromkeys(code.strip().upper() for code in value if code.strip()))


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderAdminForm
    list_display = ["name", "slug", "headquarters", "data_policy", "location_curated", "listed"]
    list_filter = ["data_policy", "headquarters", "location_curated", "listed"]
    list_editable = ["data_policy"]
    search_fields = ["name", "slug"]
    readonly_fields = ["slug", "listed", "first_seen", "last_seen"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "listed"]}),
        ("Curated", {"fields": ["data_policy", "headquarters", "datacenters", "location_curated"]}),
        ("Links", {"fields": ["privacy_policy_url", "terms_of_service_url", "status_page_url"]}),
        ("Sync", {"fields": ["first_seen", "last_seen"]}),
    ]

    def save_model(self, request: HttpRequest, obj: Provider, form: Any, change: bool) -> None:
        if {"headquarters", "datacenters"} & set(form.changed_data):
            obj.location_curated = True  # an operator's location must survive later syncs
        super().save_model(request, obj, form, change)
        services.catalog_cache_invalidate()  # curated policy/location show up at once


SYNCED = {field.name for field in Synced._meta.local_fields}
ENDPOINT_COLUMNS = (
    "provider", "tag", "prompt_price", "completion_price", "context_length",
    "max_completion_tokens", "quantization", "status", "uptime_last_30m", "inferred",
    "is_active",
)  # fmt: skip


class EndpointInline(admin.TabularInline):
    model = ModelEndpoint
    extra = 0
    can_delete = False
    fields = ENDPOINT_COLUMNS
    readonly_fields = ENDPOINT_COLUMNS

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Model)
class ModelAdmin(admin.ModelAdmin):
    list_display = [
        "openrouter_id", "name", "prompt_price", "completion_price", "context_length",
        "is_active", "disabled", "is_featured", "last_seen",
    ]  # fmt: skip
    list_filter = ["is_active", "disabled", "is_featured", "author"]
    search_fields = ["openrouter_id", "name"]
    # All OpenRouter's but the operator's two switches; the sync's bookkeeping (Synced's
    # fields, which Django lists first) last.
    readonly_fields = sorted(
        (f.name for f in Model._meta.concrete_fields if f.name not in ("disabled", "is_featured")),
        key=lambda name: name in SYNCED,
    )
    inlines = [EndpointInline]
    actions = ["feature", "unfeature", "disable", "enable"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # models come from OpenRouter

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        services.catalog_cache_invalidate()

    @admin.action(description="Feature the selected models (listed first)")
    def feature(self, request: HttpRequest, queryset: QuerySet[Model]) -> None:
        count = services.models_feature(models=queryset, featured=True)
        self.message_user(request, f"{count} model(s) featured.")

    @admin.action(description="Stop featuring the selected models")
    def unfeature(self, request: HttpRequest, queryset: QuerySet[Model]) -> None:
        count = services.models_feature(models=queryset, featured=False)
        self.message_user(request, f"{count} model(s) no longer featured.")

    @admin.action(description="Deactivate: hide the selected models from users")
    def disable(self, request: HttpRequest, queryset: QuerySet[Model]) -> None:
        count = services.models_disable(models=queryset, disabled=True)
        self.message_user(request, f"{count} model(s) hidden from users.")

    @admin.action(description="Reactivate the selected models")
    def enable(self, request: HttpRequest, queryset: QuerySet[Model]) -> None:
        count = services.models_disable(models=queryset, disabled=False)
        self.message_user(request, f"{count} model(s) visible again.")


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = [
        "started_at", "source", "status", "added", "updated", "deactivated", "unchanged",
        "failed",
    ]  # fmt: skip
    list_filter = ["status"]
    readonly_fields = [f.name for f in SyncRun._meta.concrete_fields]
    change_list_template = "admin/models_catalog/syncrun/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        start = self.admin_site.admin_view(self.start_sync)
        return [path("start/", start, name="models_catalog_syncrun_start"), *super().get_urls()]

    def start_sync(self, request: HttpRequest) -> HttpResponse:
        target = reverse("admin:models_catalog_syncrun_changelist")
        if request.method != "POST" or not self.has_change_permission(request):
            return HttpResponseRedirect(target)
        transaction.on_commit(tasks.sync_models.delay)
        messages.success(request, "A catalog sync was queued; refresh to see it here.")
        return HttpResponseRedirect(target)
