"""The model request goes out through the SDK's own request path without its typed
``create()`` transform (7 ms a call for mcp-atlassian's 98 tools): only safe while the
transform would give our request back unchanged, which these tests check against the SDK
installed — a version that started renaming or reshaping a field fails here."""

import json
from pathlib import Path
from typing import Any

from openai._utils import maybe_transform
from openai.types.chat import completion_create_params

from assistant.llm import chat_request
from assistant.mcp_client import ToolSpec
from assistant.services.tools import openai_tools
from assistant.tool_policy import offered_schema

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "mcp-atlassian_tools_2026-08-21.json"


def _real_tools() -> list[dict[str, Any]]:
    """mcp-atlassian's listed tools as the model is offered them."""
    listed = json.loads(FIXTURE.read_text(encoding="utf-8"))["tools"]
    specs = []
    for tool in listed:
        schema = offered_schema(dict(tool["inputSchema"]))
        if schema is not None:
            specs.append(ToolSpec(tool["name"], tool.get("description") or "", schema, True))
    return openai_tools(specs)


CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You are Kay. Sites: Acme Jira (https://acme.atlassian.net)."},
    {"role": "user", "content": "Create a ticket in KAN titled 'Fix login bug', then list KAN"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {
                    "name": "jira_create_issue",
                    "arguments": '{"project_key": "KAN", "summary": "Fix login bug"}',
                },
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "jira_search", "arguments": '{"jql": "project = KAN"}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"key": "KAN-7"}'},
    {"role": "tool", "tool_call_id": "call_2", "content": "Error: the tool failed."},
    {"role": "assistant", "content": "Created KAN-7. KAN has 7 tickets."},
    {"role": "user", "content": 'Thanks — ünïcode and "quotes" too'},
]


def test_the_request_is_already_what_the_sdk_would_send():
    tools = _real_tools()
    assert len(tools) > 50  # the real list, schemas and all
    request = chat_request(model="gpt-4o-mini", messages=CONVERSATION, tools=tools)
    sent = maybe_transform(request, completion_create_params.CompletionCreateParamsStreaming)
    assert sent == request
    assert json.dumps(sent, sort_keys=True) == json.dumps(request, sort_keys=True)


def test_without_tools_nothing_about_tools_is_sent():
    request = chat_request(model="gpt-4o-mini", messages=CONVERSATION[:2], tools=[])
    assert "tools" not in request and "parallel_tool_calls" not in request
    sent = maybe_transform(request, completion_create_params.CompletionCreateParamsStreaming)
    assert sent == request
