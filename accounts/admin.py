from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm

from accounts.models import User


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserEditForm
    add_form = UserCreationForm
    ordering = ("email",)
    list_display = ("email", "name", "is_staff", "is_active", "date_joined", "last_login")
    list_filter = ("is_staff", "is_superuser", "is_active")
    search_fields = ("email", "name")
    readonly_fields = ("date_joined", "last_login")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("name",)}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


# --- CLI sessions, personal API tokens, device login (issue 4): no hash is shown ---------
from accounts.models import (  # noqa: E402
    ApiToken,
    AtlassianProfile,
    CliSession,
    DeviceAuthorization,
    SecurityEvent,
)


@admin.register(CliSession)
class CliSessionAdmin(admin.ModelAdmin):
    list_display = ("user", "origin", "client_name", "created_at", "expires_at", "revoked_at")
    list_filter = ("origin", "revoked_reason")
    search_fields = ("user__email", "account_id", "client_name")
    fields = (
        "public_id",
        "user",
        "account_id",
        "origin",
        "client_name",
        "created_at",
        "expires_at",
        "last_refreshed_at",
        "revoked_at",
        "revoked_reason",
    )
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def delete_model(self, request, obj):
        self.delete_queryset(request, CliSession.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        # Revoke first, so the trail names the operator and the cache forgets the family
        # at once (its minted API tokens go with the rows).
        self.revoke(request, queryset)
        super().delete_queryset(request, queryset)

    @admin.action(description="Revoke the selected CLI sessions")
    def revoke(self, request, queryset):
        from accounts.services import RequestOrigin
        from accounts.tokens import cli_session_revoke

        for session in queryset:
            cli_session_revoke(
                session=session,
                reason="revoked_by_operator",
                actor=request.user,
                origin=RequestOrigin.of(request),
            )


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("user", "name", "version", "created_at", "last_used_at", "revoked_at")
    list_filter = ("version",)
    search_fields = ("user__email", "name")
    fields = ("user", "name", "version", "created_at", "expires_at", "last_used_at", "revoked_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False


@admin.register(DeviceAuthorization)
class DeviceAuthorizationAdmin(admin.ModelAdmin):
    list_display = ("client_name", "status", "user", "created_at", "expires_at")
    list_filter = ("status",)
    fields = (
        "client_name",
        "client_ip",
        "status",
        "user",
        "interval",
        "created_at",
        "expires_at",
        "decided_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        return False


@admin.register(SecurityEvent)
class SecurityEventAdmin(admin.ModelAdmin):
    """Every account's security trail, read-only: what happened, by whom, from where."""

    list_display = ("created_at", "user", "kind", "actor", "ip_address", "client")
    list_filter = ("kind",)
    search_fields = ("user__email", "actor__email", "ip_address")
    fields = ("created_at", "user", "kind", "actor", "ip_address", "client", "detail")
    readonly_fields = fields
    list_select_related = ("user", "actor")
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AtlassianProfile)
class AtlassianProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "account_id", "name", "email", "account_status", "updated_at")
    search_fields = ("user__email", "account_id", "email", "name")
    readonly_fields = ("user", "account_id", "created_at", "updated_at")
