"""What the tool loop needs from a tool layer, as structural types: the production one is
the MCP layer (``assistant.services.mcp``); tests may pass a small local one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class Tool(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def input_schema(self) -> dict[str, Any]: ...
    @property
    def read_only(self) -> bool: ...


class Result(Protocol):
    @property
    def text(self) -> str: ...
    @property
    def is_error(self) -> bool: ...
    @property
    def duration_ms(self) -> int | float: ...


class ToolExecutor(Protocol):
    """The tools one user may use, and a way to call them with that user's access.

    ``call`` returns a failed tool's error as a result (the model is told and explains);
    it raises ``core.errors.ApplicationError`` only when no tool can run at all (no
    connection, re-authorisation needed, server unreachable)."""

    def tools(self) -> Sequence[Tool]: ...

    def call(self, name: str, arguments: dict[str, Any]) -> Result: ...


def openai_tools(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    """The tools in Chat Completions' ``tools`` shape."""
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.input_schema or {"type": "object", "properties": {}},
            },
        }
        for tool in tools
    ]
