"""The user's Jira tools over MCP: their Atlassian access (refreshed through the
Connections service), the tools they may use, one tool run, and the status /mcp/status and
/health report."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.views.decorators.debug import sensitive_variables

from accounts.models import User
from assistant.mcp_client import (
    McpUnavailable,
    ToolResult,
    ToolSpec,
    mcp_tool_call,
    mcp_tools_for,
)
from connections.selectors import accessible_resources_for
from connections.services import connection_access_token
from core.errors import Conflict, ConnectionNeedsReauth, NotFound

# The last status seen per user, for /health without an MCP round trip.
_STATUS_KEY = "assistant:mcp-status:{user_id}"
_STATUS_TTL = 24 * 3600


class JiraNotConnected(Conflict):
    code = "jira_not_connected"

    def __init__(self) -> None:
        super().__init__("Connect Jira first: kay connect jira")


@dataclass(frozen=True)
class AtlassianAccess:
    """The user's fresh Atlassian token, the cloud id of their first Jira site, and their
    sites (for the system prompt)."""

    access_token: str = field(repr=False)
    cloud_id: str
    sites: list[dict[str, Any]]

    @classmethod
    @sensitive_variables("token")
    def read(cls, *, user: User) -> AtlassianAccess:
        try:
            token = connection_access_token(user=user, service="jira")
        except NotFound:
            raise JiraNotConnected() from None
        except ConnectionNeedsReauth:
            raise ConnectionNeedsReauth(
                "Jira needs re-authorisation: kay connect jira (or reconnect it on the "
                "Connections page)."
            ) from None
        sites = accessible_resources_for(user=user)
        return cls(access_token=token, cloud_id=sites[0]["id"] if sites else "", sites=sites)


# Where a caller's access comes from: read afresh by default.
AccessSource = Callable[[], AtlassianAccess]


# What this process last wrote per user, and when: the same status is not written again
# for a minute (a cache round trip on every run). Another process's write of a different
# status can so stand for up to that minute.
_STATUS_REWRITE_SECONDS = 60.0
_written: dict[int, tuple[bool, int, float]] = {}


def _remember(*, user: User, connected: bool, tool_count: int) -> None:
    now = time.monotonic()
    last = _written.get(user.pk)
    fresh = last is not None and now - last[2] < _STATUS_REWRITE_SECONDS
    if fresh and last is not None and last[:2] == (connected, tool_count):
        return
    if len(_written) > 10_000:
        _written.clear()
    cache.set(
        _STATUS_KEY.format(user_id=user.pk),
        {"connected": connected, "toolCount": tool_count},
        _STATUS_TTL,
    )
    _written[user.pk] = (connected, tool_count, now)


def mcp_status_memo_forget() -> None:
    """Forget what this process wrote (the cache was emptied under it: tests)."""
    _written.clear()


os.register_at_fork(after_in_child=mcp_status_memo_forget)


def _tools(*, user: User, access: AtlassianAccess) -> list[ToolSpec]:
    try:
        tools = mcp_tools_for(
            user_id=user.pk, access_token=access.access_token, cloud_id=access.cloud_id
        )
    except McpUnavailable:
        _remember(user=user, connected=False, tool_count=0)
        raise
    _remember(user=user, connected=True, tool_count=len(tools))
    return tools


def assistant_tools_for_user(*, user: User, access: AccessSource | None = None) -> list[ToolSpec]:
    """The Jira/Confluence tools ``user`` may use (none when MCP is turned off), with the
    access ``access`` gives (read afresh by default).

    Raises ``JiraNotConnected`` (409) without a Jira connection, ``ConnectionNeedsReauth``
    (409) when its token cannot be refreshed, ``McpUnavailable`` (503)."""
    if not settings.MCP_JIRA_ENABLED:
        return []
    return _tools(user=user, access=access() if access else AtlassianAccess.read(user=user))


def assistant_tool_run(
    *, user: User, name: str, arguments: dict[str, Any], access: AccessSource | None = None
) -> ToolResult:
    """Run one tool as ``user`` with their own Atlassian token. A disabled tool or a
    tool's failure is an error result (for the model); the errors of
    ``assistant_tools_for_user`` apply."""
    found = access() if access else AtlassianAccess.read(user=user)
    return mcp_tool_call(
        user_id=user.pk,
        access_token=found.access_token,
        cloud_id=found.cloud_id,
        name=name,
        arguments=arguments,
    )


def assistant_mcp_status(*, user: User) -> dict[str, Any]:
    """Seed 003's ``GET /mcp/status`` body for ``user``: an unreachable server is
    reported (``connected: false``), not raised; no Jira connection raises 409."""
    body: dict[str, Any] = {
        "enabled": settings.MCP_JIRA_ENABLED,
        "connected": False,
        "initialized": False,
        "toolCount": 0,
        "tools": [],
    }
    if not settings.MCP_JIRA_ENABLED:
        return body
    try:
        tools = _tools(user=user, access=AtlassianAccess.read(user=user))
    except McpUnavailable:
        return body
    return {
        **body,
        "connected": True,
        "initialized": True,
        "toolCount": len(tools),
        "tools": [{"name": tool.name, "description": tool.description} for tool in tools],
    }


def assistant_mcp_health(*, user: Any) -> dict[str, Any]:
    """Seed 003's ``mcp_jira`` block of ``GET /health``: the last state seen for ``user``
    (no MCP round trip per health check); ``unknown`` before the first."""
    if not settings.MCP_JIRA_ENABLED:
        return {"status": "not_configured", "enabled": False, "connected": False, "toolCount": 0}
    last = None
    if getattr(user, "is_authenticated", False):
        last = cache.get(_STATUS_KEY.format(user_id=user.pk))
    if last is None:
        return {"status": "unknown", "enabled": True, "connected": False, "toolCount": 0}
    return {
        "status": "healthy" if last["connected"] else "unhealthy",
        "enabled": True,
        **last,
    }
