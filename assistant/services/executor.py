"""The production tool layer for the loop: the user's Jira tools over MCP."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from accounts.models import User
from assistant.mcp_client import ToolResult, ToolSpec
from assistant.services.mcp import AtlassianAccess, assistant_tool_run, assistant_tools_for_user
from connections.selectors import connection_usable

# How long one run reuses the Atlassian access it read: well inside the Connections
# service's refresh margin (a token handed out is good for five minutes more).
ACCESS_REUSE_SECONDS = 60.0


@dataclass
class McpToolExecutor:
    """``ToolExecutor`` over MCP, acting with ``user``'s own Atlassian access. One per
    run: the access (token, sites) it read is reused by the run's next steps for a minute,
    not read again at each."""

    user: User
    _access: AtlassianAccess | None = field(default=None, repr=False)
    _read_at: float = 0.0

    def access(self) -> AtlassianAccess:
        access = self._access
        reusable = (
            access is not None
            and time.monotonic() - self._read_at <= ACCESS_REUSE_SECONDS
            # Only while the connection stands: a user who disconnects Jira (or whose
            # connection needs re-authorising) stops the run's next step, not a minute on.
            and connection_usable(user=self.user, service="jira")
        )
        if access is None or not reusable:
            self._access = None  # a refusal below leaves nothing to reuse
            access = self._access = AtlassianAccess.read(user=self.user)
            self._read_at = time.monotonic()
        return access

    def sites(self) -> list[dict[str, Any]] | None:
        """The user's Atlassian sites, when the tools' access read them (None: not read,
        as when MCP is turned off)."""
        return self._access.sites if self._access is not None else None

    def tools(self) -> list[ToolSpec]:
        return assistant_tools_for_user(user=self.user, access=self.access)

    def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        return assistant_tool_run(
            user=self.user, name=name, arguments=arguments, access=self.access
        )
