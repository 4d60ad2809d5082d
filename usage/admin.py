"""Operators see usage buckets and where each key's fetch stands; nothing here changes them
(usage is written only by the fetchers and the metering service)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from usage.models import UsageBucket, UsageFetchState


class _ReadOnly(admin.ModelAdmin):
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Never from these models' own pages. Deleting a user (or a key) elsewhere in the
        # admin asks this too, for every row the cascade takes along: refusing there would
        # make anyone with usage undeletable (as keys.admin does).
        opts = self.model._meta
        match = getattr(request, "resolver_match", None)
        url_name = (match.url_name if match else None) or ""
        return bool(url_name) and not url_name.startswith(f"{opts.app_label}_{opts.model_name}_")


@admin.register(UsageBucket)
class UsageBucketAdmin(_ReadOnly):
    list_display = (
        "bucket_start",
        "granularity",
        "owner",
        "source",
        "provider",
        "model",
        "api_key",
        "requests",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "cost_source",
    )
    list_filter = ("source", "granularity", "cost_source", "provider")
    search_fields = ("owner__email", "model")
    list_select_related = ("owner", "api_key")
    # Millions of rows: no COUNT(*) of the whole table on every page.
    show_full_result_count = False
    fields = (
        "owner",
        "source",
        "provider",
        "model",
        "external_project_id",
        "external_key_id",
        "api_key",
        "project",
        "bucket_start",
        "granularity",
        "requests",
        "input_tokens",
        "cached_tokens",
        "output_tokens",
        "cost_micros",
        "cost_usd",
        "cost_source",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="Cost (USD)", ordering="cost_micros")
    def cost_usd(self, obj: UsageBucket) -> str:
        return f"{Decimal(obj.cost_micros).scaleb(-6):.6f}"


@admin.register(UsageFetchState)
class UsageFetchStateAdmin(_ReadOnly):
    list_display = ("api_key", "owner", "last_status", "last_fetched_at", "cursor", "last_error")
    list_filter = ("last_status",)
    search_fields = ("api_key__owner__email", "api_key__name")
    list_select_related = ("api_key", "api_key__owner")
    fields = ("api_key", "owner", "last_status", "last_fetched_at", "cursor", "last_error")
    readonly_fields = fields

    @admin.display(description="Owner", ordering="api_key__owner__email")
    def owner(self, obj: UsageFetchState) -> Any:
        return obj.api_key.owner
