"""URLs of the assistant app: seed 003's ``/mcp/status`` at the root (the CLI's path)."""

from django.urls import path

from assistant import api

app_name = "assistant"

urlpatterns = [
    path("mcp/status", api.McpStatusApi.as_view(), name="mcp-status"),
]
