"""Connections' routes: the Kay CLI's connect, callback and status paths (seed 003, at
the root, no trailing slash) and the Connections pages."""

from django.urls import path

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
    path("auth/me", api.AuthMeApi.as_view(), name="auth-me"),
    # Dashboard pages.
    path("dashboard/connections/", views.connection_list, name="list"),
    path("dashboard/connections/<slug:service>/connect", views.connection_start, name="start"),
    path(
        "dashboard/connections/<slug:service>/disconnect",
        views.connection_remove,
        name="remove",
    ),
]
