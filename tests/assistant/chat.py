"""What the assistant's LLM tests share: the fake chat server wired into settings, and a
local tool layer built from the real mcp-atlassian tools (schemas and annotations)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.fakes.openai_chat import FakeOpenAIChat
from tests.fakes.server import load

SERVER_KEY = "sk-server-0123456789abcdefghijklmnopqrstuv"
TOOLS = {t["name"]: t for t in load("mcp-atlassian_tools_2026-08-21.json")["tools"]}


@dataclass(frozen=True)
class LocalTool:
    name: str
    description: str
    input_schema: dict[str, Any]
    read_only: bool


@dataclass(frozen=True)
class LocalResult:
    text: str
    is_error: bool = False
    duration_ms: float = 3


@dataclass
class LocalExecutor:
    """Answers tool calls in process, from ``answers`` (name → function of the
    arguments), and records every call it ran."""

    names: tuple[str, ...] = ("jira_search", "jira_get_issue", "jira_create_issue")
    answers: dict[str, Callable[[dict[str, Any]], LocalResult]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def tools(self) -> list[LocalTool]:
        return [
            LocalTool(
                name=name,
                description=TOOLS[name]["description"],
                input_schema=TOOLS[name]["inputSchema"],
                read_only=bool(TOOLS[name]["annotations"].get("readOnlyHint")),
            )
            for name in self.names
        ]

    def call(self, name: str, arguments: dict[str, Any]) -> LocalResult:
        self.calls.append((name, arguments))
        answer = self.answers.get(name)
        if answer is None:
            return LocalResult(json.dumps({"ok": name, "arguments": arguments}))
        return answer(arguments)


@contextmanager
def chat_serving(settings, *, keep_alive: bool = False) -> Iterator[FakeOpenAIChat]:
    """The fake chat server as the server's OpenAI endpoint (and OpenRouter's)."""
    fake = FakeOpenAIChat(keep_alive=keep_alive).start()
    settings.OPENAI_BASE_URL = fake.base_url
    settings.OPENROUTER_BASE_URL = fake.base_url
    settings.OPENAI_API_KEY = SERVER_KEY
    settings.OPENAI_MAX_RETRIES = 0
    settings.OPENAI_TIMEOUT = 10
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def chat(settings) -> Iterator[FakeOpenAIChat]:
    with chat_serving(settings) as fake:
        yield fake


def history_turn(n: int, size: int = 1) -> list[dict[str, Any]]:
    """One stored turn: a question, a tool call, its result (``size`` characters), an
    answer."""
    call = {
        "id": f"c{n}",
        "type": "function",
        "function": {"name": "jira_search", "arguments": "{}"},
    }
    return [
        {"role": "user", "content": f"question {n}"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": f"c{n}", "content": "r" * size},
        {"role": "assistant", "content": f"answer {n}"},
    ]


@pytest.fixture
def executor() -> LocalExecutor:
    return LocalExecutor()
