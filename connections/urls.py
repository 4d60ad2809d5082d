"""Routes of issue 4: the Kay CLI's root paths (seed 003, no trailing slash), the token
and device-login API under /api/, and the dashboard pages."""

from django.urls import path

from accounts import auth_api, auth_views
from connections import api, views

app_name = "connections"

urlpatterns = [
    # Kay CLI (seed 003), kept exactly.
    path("connections/connect", api.ConnectionConnectApi.as_view(), name="connect"),
    path("connections/oauth/callback", views.oauth_callback, name="oauth-callback"),
    path("connections/oauth/confirm/<int:link_id>", views.oauth_link_confirm, name="confirm"),
    path("connections", api.ConnectionListApi.as_view(), name="api-list"),
    path("connections/disconnect", api.ConnectionDisconnectApi.as_view(), name="disconnect"),
    path("auth/status/<str:state>", api.AuthStatusApi.as_view(), name="auth-status"),
    path("auth/refresh", auth_api.AuthRefreshApi.as_view(), name="auth-refresh"),
    path("auth/me", api.AuthMeApi.as_view(), name="auth-me"),
    path("auth/logout", auth_api.AuthLogoutApi.as_view(), name="auth-logout"),
    # Personal API tokens (seed 000) and device login (RFC 8628).
    path("api/token", auth_api.ApiTokenCreateApi.as_view(), name="api-token-create"),
    path("api/tokens", auth_api.ApiTokenListApi.as_view(), name="api-token-list"),
    path(
        "api/tokens/<int:token_id>", auth_api.ApiTokenRevokeApi.as_view(), name="api-token-revoke"
    ),
    path("api/auth/device", auth_api.DeviceAuthorizationApi.as_view(), name="api-device"),
    path("api/auth/device/token", auth_api.DeviceTokenApi.as_view(), name="api-device-token"),
    # Dashboard pages.
    path("dashboard/connections/", views.connection_list, name="list"),
    path("dashboard/connections/<slug:service>/connect", views.connection_start, name="start"),
    path(
        "dashboard/connections/<slug:service>/disconnect",
        views.connection_remove,
        name="remove",
    ),
    path("dashboard/tokens/", auth_views.token_list, name="tokens"),
    path("dashboard/tokens/<int:token_id>/revoke", auth_views.token_revoke, name="token-revoke"),
    path(
        "dashboard/tokens/sessions/<str:public_id>/end",
        auth_views.cli_session_end,
        name="cli-session-end",
    ),
    path("dashboard/device", auth_views.device_verify, name="device"),
]
