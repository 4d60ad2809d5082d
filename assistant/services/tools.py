"""What the tool loop needs from a tool layer, as structural types: the production one is
the MCP layer (``assistant.services.mcp``); tests may pass a small local one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable


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


@runtime_checkable
class KnowsSites(Protocol):
    """A tool layer that read the user's Atlassian sites already (for the system prompt),
    so the run need not read them again."""

    def sites(self) -> list[dict[str, Any]] | None: ...


def executor_sites(executor: ToolExecutor) -> list[dict[str, Any]] | None:
    """The sites ``executor`` read, None when it does not say (then they are read)."""
    return executor.sites() if isinstance(executor, KnowsSites) else None


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
