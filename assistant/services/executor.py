"""The production tool layer for the loop: the user's Jira tools over MCP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accounts.models import User
from assistant.mcp_client import ToolResult, ToolSpec
from assistant.services.mcp import assistant_tool_run, assistant_tools_for_user


@dataclass(frozen=True)
class McpToolExecutor:
    """``ToolExecutor`` over MCP, acting with ``user``'s own Atlassian access."""

    user: User

    def tools(self) -> list[ToolSpec]:
        return assistant_tools_for_user(user=self.user)

    def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        return assistant_tool_run(user=self.user, name=name, arguments=arguments)
