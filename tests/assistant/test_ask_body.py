"""/ask's body is built by hand on the hot path (assistant.serializers.ask_body): it must be
exactly what the documented serializers make of the same outcome, whatever the records
hold (numbers as text, errors or none, nested arguments)."""

from types import SimpleNamespace
from typing import Any

import pytest

from assistant.serializers import AskDataSerializer, PendingDataSerializer, ask_body
from assistant.services.ask import AskOutcome

RECORDS: list[dict[str, Any]] = [
    {
        "id": "call_1",
        "name": "jira_search",
        "arguments": {"jql": "project = KAN", "limit": 5, "nested": {"a": [1, None]}},
        "result": "KAN-1 Fix login",
        "durationMs": 12,
        "error": None,
    },
    {
        "id": 7,  # not a string: the serializer makes it one
        "name": "jira_get_issue",
        "arguments": "not an object",
        "result": "",
        "durationMs": 3.0,
        "error": "The tool failed.",
    },
]


def outcome(**kwargs: Any) -> AskOutcome:
    base: dict[str, Any] = dict(
        run=SimpleNamespace(pk=41),
        status="completed",
        message="Done.",
        prompt="List KAN",
        response="KAN has one ticket.",
        tool_calls=RECORDS,
    )
    return AskOutcome(**{**base, **kwargs})  # type: ignore[arg-type]


@pytest.mark.parametrize("calls", [RECORDS, []])
def test_a_completed_body_is_what_the_serializer_makes(calls):
    made = outcome(tool_calls=calls, session_id=9)
    body = ask_body(made)
    expected = AskDataSerializer(
        {"prompt": made.prompt, "response": made.response, "toolCalls": calls, "runId": 41}
    ).data
    assert body == {"status": "completed", "message": "Done.", "session_id": 9, "data": expected}
    assert [type(call["durationMs"]) for call in body["data"]["toolCalls"]] == [int] * len(calls)


@pytest.mark.parametrize(
    "action", [{"tool": "jira_create_issue", "arguments": {"summary": "Fix"}}, None]
)
def test_a_pending_body_is_what_the_serializer_makes(action):
    made = outcome(
        status="pending_confirmation",
        response="",
        action=action,
        confirmation_token="kay_confirm_x",
    )
    expected = PendingDataSerializer({"action": action, "toolCalls": RECORDS, "runId": 41}).data
    body = ask_body(made)
    assert body["data"] == expected
    assert body["confirmation_token"] == "kay_confirm_x" and "session_id" not in body
