"""The tool loop in one-shot mode: tools called, results (and errors) fed back, the
round limit, metering, and what the model is told."""

from __future__ import annotations

import json

import pytest

from assistant.models import AssistantRun
from assistant.services.ask import ask_run
from assistant.services.conversation import ToolRoundLimit
from tests.assistant.chat import LocalResult
from tests.fakes.openai_chat import error, text, tool_calls
from usage.models import MeteredLlmCall, UsageBucket

pytestmark = pytest.mark.django_db

SEARCH = {"jql": "project = KAN"}
ISSUES = json.dumps({"issues": [{"key": "KAN-1"}, {"key": "KAN-2"}]})


def _ask(alice, executor, prompt="List all tickets in project KAN", **kwargs):
    return ask_run(user=alice, prompt=prompt, executor=executor, **kwargs)


def test_one_shot_calls_the_tool_and_answers_with_its_result(alice, chat, executor):
    executor.answers["jira_search"] = lambda args: LocalResult(ISSUES, duration_ms=42)
    chat.script(tool_calls(("jira_search", SEARCH)), text("KAN-1 and KAN-2 are open."))

    outcome = _ask(alice, executor)

    assert (outcome.status, outcome.response) == ("completed", "KAN-1 and KAN-2 are open.")
    assert outcome.message == outcome.response
    assert executor.calls == [("jira_search", SEARCH)]
    [call] = outcome.tool_calls
    assert call["name"] == "jira_search" and call["arguments"] == SEARCH
    assert call["result"] == ISSUES and call["durationMs"] == 42 and call["error"] is None
    # The model got the tool's result, answering its own call id.
    first, second = chat.requests
    assistant, result = second.messages[-2:]
    assert assistant["tool_calls"][0]["id"] == result["tool_call_id"]
    assert result == {"role": "tool", "tool_call_id": result["tool_call_id"], "content": ISSUES}
    run = AssistantRun.objects.get()
    assert (run.status, run.mode, run.llm_calls) == ("completed", "one_shot", 2)
    assert (run.input_tokens, run.output_tokens, run.owner) == (200, 40, alice)
    assert run.tool_calls == outcome.tool_calls and run.session is None


def test_the_model_is_told_who_asks_and_which_tools_there_are(alice, chat, executor):
    chat.script(text("Hello"))
    _ask(alice, executor, prompt="hi")
    [request] = chat.requests
    system, user = request.messages
    assert system["role"] == "system" and user == {"role": "user", "content": "hi"}
    assert "Kay" in system["content"] and "KYG Trade" in system["content"]
    assert "Alice Owner" in system["content"] and "alice@example.com" in system["content"]
    assert "`jira_create_issue` (changes data)" in system["content"]
    assert "`jira_search` (reads)" in system["content"]
    assert request.tool_names == ["jira_search", "jira_get_issue", "jira_create_issue"]
    assert request.body["tools"][0]["function"]["parameters"]["required"] == ["jql"]


def test_parallel_tool_calls_all_run_and_all_results_go_back(alice, chat, executor):
    chat.script(
        tool_calls(
            ("jira_get_issue", {"issue_key": "KAN-1"}), ("jira_get_issue", {"issue_key": "KAN-2"})
        ),
        text("Both are open."),
    )
    outcome = _ask(alice, executor, prompt="Compare KAN-1 and KAN-2")
    assert [args for _, args in executor.calls] == [{"issue_key": "KAN-1"}, {"issue_key": "KAN-2"}]
    assert len(outcome.tool_calls) == 2
    sent = chat.requests[1].messages
    call_ids = [c["id"] for c in sent[-3]["tool_calls"]]
    assert [m["tool_call_id"] for m in sent[-2:]] == call_ids


def test_a_failing_tool_is_told_to_the_model_which_explains(alice, chat, executor):
    executor.answers["jira_search"] = lambda args: LocalResult(
        "Error calling tool 'jira_search': The value 'NOPE' does not exist for the field "
        "'project'.",
        is_error=True,
    )
    chat.script(tool_calls(("jira_search", {"jql": "project = NOPE"})), text("There is no NOPE."))
    outcome = _ask(alice, executor, prompt="List NOPE")
    assert outcome.status == "completed" and outcome.response == "There is no NOPE."
    assert "does not exist" in outcome.tool_calls[0]["error"]
    told = chat.requests[1].messages[-1]
    assert told["role"] == "tool" and told["content"].startswith("Error: ")


@pytest.mark.parametrize(
    ("name", "arguments", "said"),
    [
        ("jira_delete_issue", {"issue_key": "KAN-1"}, "There is no tool named 'jira_delete_issue'"),
        ("jira_search", '{"jql": "project = KAN"', "The arguments were not valid JSON."),
        ("jira_search", '["project = KAN"]', "The arguments must be a JSON object."),
    ],
)
def test_unknown_tools_and_bad_arguments_are_not_run_but_told(
    alice, chat, executor, name, arguments, said
):
    chat.script(tool_calls((name, arguments)), text("Sorry, that did not work."))
    outcome = _ask(alice, executor)
    assert executor.calls == []
    assert outcome.tool_calls[0]["error"].startswith(said)
    assert chat.requests[1].messages[-1]["content"].startswith(f"Error: {said}")
    assert outcome.response == "Sorry, that did not work."


def test_the_round_limit_stops_a_looping_model(alice, chat, executor, settings):
    settings.ASSISTANT_MAX_TOOL_ROUNDS = 3
    chat.script(*[tool_calls(("jira_search", SEARCH)) for _ in range(5)])
    with pytest.raises(ToolRoundLimit) as caught:
        _ask(alice, executor)
    assert caught.value.status == 422 and "Tool-round limit reached" in caught.value.message
    assert len(chat.requests) == 3 and len(executor.calls) == 3
    run = AssistantRun.objects.get()
    assert (run.status, run.error_code, len(run.tool_calls)) == ("failed", "tool_round_limit", 3)


def test_every_model_call_is_metered_once(alice, chat, executor):
    chat.script(tool_calls(("jira_search", SEARCH)), text("Done."))
    outcome = _ask(alice, executor)
    calls = MeteredLlmCall.objects.filter(owner=alice).order_by("pk")
    run_id = outcome.run.pk
    assert [c.call_id for c in calls] == [f"assistant-run-{run_id}-1", f"assistant-run-{run_id}-2"]
    assert all(c.api_key_id is None and c.provider == "openai" for c in calls)
    bucket = UsageBucket.objects.get(owner=alice)
    assert (bucket.requests, bucket.input_tokens, bucket.output_tokens) == (2, 200, 40)


def test_a_provider_failure_fails_the_run_without_running_tools(alice, chat, executor):
    chat.script(error(503))
    with pytest.raises(Exception) as caught:
        _ask(alice, executor)
    assert getattr(caught.value, "code", "") == "provider_unavailable"
    assert executor.calls == []
    assert AssistantRun.objects.get().status == "failed"
