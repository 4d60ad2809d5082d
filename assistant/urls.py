"""URLs of the assistant app: seed 003's ``/mcp/status``, ``/ask`` and ``/ask/confirm`` at
the root (the CLI's paths), the conversations under ``/api/assistant/``."""

from django.urls import path

from assistant import api, async_views, views

app_name = "assistant"

urlpatterns = [
    path("mcp/status", api.McpStatusApi.as_view(), name="mcp-status"),
    # Async views: they await the worker's run without holding a thread (assistant.async_views).
    path("ask", async_views.ask, name="ask"),
    path("ask/confirm", async_views.ask_confirm, name="ask-confirm"),
    path("ask/runs/<int:run_id>", api.AskRunApi.as_view(), name="ask-run"),
    path("ask/runs/<int:run_id>/events", async_views.ask_run_events, name="ask-run-events"),
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
    path("dashboard/assistant/runs/<int:run_id>/", views.assistant_run, name="run"),
]
