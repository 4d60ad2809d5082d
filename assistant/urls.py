"""URLs of the assistant app: seed 003's ``/mcp/status``, ``/ask`` and ``/ask/confirm`` at
the root (the CLI's paths), the conversations under ``/api/assistant/``."""

from django.urls import path

from assistant import api, views

app_name = "assistant"

urlpatterns = [
    path("mcp/status", api.McpStatusApi.as_view(), name="mcp-status"),
    path("ask", api.AskApi.as_view(), name="ask"),
    path("ask/confirm", api.AskConfirmApi.as_view(), name="ask-confirm"),
    path("api/assistant/sessions", api.SessionListApi.as_view(), name="api-sessions"),
    path(
        "api/assistant/sessions/<int:session_id>",
        api.SessionDetailApi.as_view(),
        name="api-session",
    ),
    # Pages
    path("dashboard/assistant/", views.assistant_page, name="page"),
    path("dashboard/assistant/stream", views.assistant_stream, name="stream"),
    path(
        "dashboard/assistant/sessions/<int:session_id>/",
        views.assistant_session,
        name="session",
    ),
    path(
        "dashboard/assistant/sessions/<int:session_id>/delete/",
        views.assistant_session_delete,
        name="session_delete",
    ),
]
