"""Operators see connection state, never tokens (the encrypted fields are not editable)."""

from django.contrib import admin

from connections.models import AccessibleResource, Connection, KaySession


class AccessibleResourceInline(admin.TabularInline):
    model = AccessibleResource
    extra = 0
    fields = ("name", "url", "resource_id", "scopes")
    readonly_fields = fields
    can_delete = False


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = ("user", "service", "status", "expires_at", "last_refreshed_at")
    list_filter = ("service", "status")
    search_fields = ("user__email", "external_account_id")
    fields = (
        "user",
        "service",
        "status",
        "external_account_id",
        "scopes",
        "expires_at",
        "connected_at",
        "last_refreshed_at",
        "last_error",
    )
    # The status is the one thing an operator may change (e.g. to ask for a reconnect).
    readonly_fields = tuple(name for name in fields if name != "status")
    inlines = [AccessibleResourceInline]

    def has_add_permission(self, request):
        return False


@admin.register(KaySession)
class KaySessionAdmin(admin.ModelAdmin):
    list_display = ("pk", "user", "created_at", "last_used_at")
    search_fields = ("user__email",)
    fields = ("user", "created_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False
