"""Operators see keys, projects and the audit trail — masks only, never plaintext or
ciphertext, and no action at all (nothing decrypts, nothing changes outside the audited
services). Deleting a user still removes their vault."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from keys.models import ApiKey, KeyAuditEvent, OnboardingSession, Project
from keys.selectors import with_last_used


class _ReadOnly(admin.ModelAdmin):
    """Operators look; users change their own vault through audited services."""

    actions = None

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Never from this model's own pages. Deleting a user elsewhere in the admin asks
        # this too, for every row the cascade takes along; refusing there would make
        # users with a vault undeletable.
        opts = self.model._meta
        match = getattr(request, "resolver_match", None)
        url_name = (match.url_name if match else None) or ""
        return bool(url_name) and not url_name.startswith(f"{opts.app_label}_{opts.model_name}_")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(_ReadOnly):
    list_display = (
        "name",
        "owner",
        "provider",
        "project",
        "masked_key",
        "status",
        "is_default",
        "created_at",
        "last_used_at",
    )
    list_filter = ("provider", "status", "is_default", "created_at")
    search_fields = ("name", "owner__email", "project__name")
    list_select_related = ("owner", "project")
    # "secret" is deliberately absent.
    fields = (
        "owner",
        "project",
        "provider",
        "name",
        "masked_key",
        "base_url",
        "status",
        "status_detail",
        "is_default",
        "created_at",
        "updated_at",
        "last_validated_at",
        "last_used_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiKey]:
        return with_last_used(super().get_queryset(request))

    @admin.display(description="Last used", ordering="last_used_at")
    def last_used_at(self, obj: ApiKey) -> Any:
        return getattr(obj, "last_used_at", None)


@admin.register(Project)
class ProjectAdmin(_ReadOnly):
    list_display = ("name", "owner", "created_at", "updated_at")
    search_fields = ("name", "owner__email")
    list_select_related = ("owner",)
    fields = ("owner", "name", "description", "created_at", "updated_at")
    readonly_fields = fields


@admin.register(KeyAuditEvent)
class KeyAuditEventAdmin(_ReadOnly):
    list_display = (
        "created_at",
        "action",
        "owner",
        "key_label",
        "actor",
        "source",
        "ip_address",
        "count",
    )
    list_filter = ("action", "source", "created_at")
    search_fields = ("owner__email", "key_label", "ip_address")
    list_select_related = ("owner", "actor")
    date_hierarchy = "created_at"
    fields = (
        "created_at",
        "owner",
        "api_key",
        "key_label",
        "actor",
        "action",
        "source",
        "ip_address",
        "count",
        "detail",
    )
    readonly_fields = fields


@admin.register(OnboardingSession)
class OnboardingSessionAdmin(_ReadOnly):
    list_display = ("user", "current_step", "progress", "started_at", "completed_at")
    list_select_related = ("user",)
    fields = ("user", "current_step", "progress", "started_at", "completed_at")
    readonly_fields = fields
