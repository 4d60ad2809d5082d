"""Accounts' routes, included at the root so the CLI's paths stay exactly as clients use
them: CLI session refresh and logout (seed 003), personal API tokens (seed 000), device
login (RFC 8628), the caller's profile, and the account pages."""

from django.conf import settings
from django.urls import path

from accounts import api, views

app_name = "accounts"

urlpatterns = [
    # Kay CLI (seed 003), kept exactly.
    path("auth/refresh", api.AuthRefreshApi.as_view(), name="auth-refresh"),
    path("auth/logout", api.AuthLogoutApi.as_view(), name="auth-logout"),
    # Personal API tokens (seed 000), device login (RFC 8628), profile.
    path("api/token", api.ApiTokenCreateApi.as_view(), name="api-token-create"),
    path("api/tokens", api.ApiTokenListApi.as_view(), name="api-token-list"),
    path("api/tokens/<int:token_id>", api.ApiTokenRevokeApi.as_view(), name="api-token-revoke"),
    path("api/auth/device", api.DeviceAuthorizationApi.as_view(), name="api-device"),
    path("api/auth/device/token", api.DeviceTokenApi.as_view(), name="api-device-token"),
    path("api/me", api.MeApi.as_view(), name="api-me"),
    # Pages.
    path("dashboard/tokens/", views.token_list, name="tokens"),
    path("dashboard/tokens/<int:token_id>/revoke", views.token_revoke, name="token-revoke"),
    path(
        "dashboard/tokens/sessions/<str:public_id>/end",
        views.cli_session_end,
        name="cli-session-end",
    ),
    path("dashboard/device", views.device_verify, name="device"),
    path("accounts/security/", views.security_activity, name="security"),
    path("accounts/settings/", views.account_settings, name="settings"),
]
if settings.DEBUG:
    # Development-only (seed 000 "fake login"): without DEBUG the route does not exist.
    urlpatterns.append(path("accounts/fake-login/", views.fake_login, name="fake_login"))
