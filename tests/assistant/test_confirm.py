"""Confirm mode: reads run, the first write waits for the user's yes or no; a token works
once, for its owner, for 10 minutes, and the write never runs before approval."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from assistant.models import AssistantRun, InteractiveSession, PendingConfirmation
from assistant.services.ask import ask_confirm, ask_run
from assistant.tasks import purge_confirmations
from core.errors import ApplicationError, ProviderUnavailable
from tests.assistant.chat import LocalResult
from tests.fakes.openai_chat import text, tool_calls

pytestmark = pytest.mark.django_db

CREATE = {"project_key": "KAN", "summary": "Fix login bug", "issue_type": "Task"}
PROMPT = "Create a ticket in project KAN with title 'Fix login bug'"


def _pending(alice, chat, executor):
    chat.script(
        tool_calls(("jira_search", {"jql": "project = KAN AND summary ~ 'login'"})),
        tool_calls(("jira_create_issue", CREATE)),
    )
    return ask_run(user=alice, prompt=PROMPT, executor=executor, confirm=True)


def test_reads_run_and_the_write_waits_with_a_token_stored_as_a_hash(alice, chat, executor):
    outcome = _pending(alice, chat, executor)
    assert outcome.status == "pending_confirmation"
    assert outcome.action == {"tool": "jira_create_issue", "arguments": CREATE}
    assert outcome.message.startswith("Kay wants to create issue in Jira with project key: KAN")
    assert "summary: Fix login bug" in outcome.message
    assert [name for name, _ in executor.calls] == ["jira_search"]  # the write did not run
    token = outcome.confirmation_token
    assert token.startswith("confirm_") and len(token) > 40
    pending = PendingConfirmation.objects.get()
    assert pending.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(pending.state) and token not in pending.token_hash
    assert pending.expires_at - timezone.now() <= timedelta(minutes=10)
    assert AssistantRun.objects.get().status == "pending_confirmation"


def test_approving_runs_exactly_that_action_once_and_the_model_finishes(alice, chat, executor):
    outcome = _pending(alice, chat, executor)
    chat.script(text("I've created ticket KAN-123: Fix login bug."))
    done = ask_confirm(
        user=alice, token=outcome.confirmation_token, approved=True, executor=executor
    )
    assert done.status == "completed"
    assert done.message == "Action confirmed and executed successfully"
    assert done.response == "I've created ticket KAN-123: Fix login bug."
    assert executor.calls[-1] == ("jira_create_issue", CREATE)
    assert [c["name"] for c in done.tool_calls] == ["jira_search", "jira_create_issue"]
    # The model saw the write's result answering its own call.
    last = chat.requests[-1].messages
    assert last[-1]["role"] == "tool" and last[-2]["tool_calls"][0]["function"]["name"] == (
        "jira_create_issue"
    )
    run = AssistantRun.objects.get()
    assert (run.status, run.llm_calls, run.response) == ("completed", 3, done.response)

    with pytest.raises(ApplicationError) as replay:
        ask_confirm(user=alice, token=outcome.confirmation_token, approved=True, executor=executor)
    assert (replay.value.status, replay.value.code) == (409, "confirmation_used")
    assert [name for name, _ in executor.calls].count("jira_create_issue") == 1
    assert len(chat.requests) == 3


def test_cancelling_runs_nothing_and_tells_the_model(alice, chat, executor):
    outcome = _pending(alice, chat, executor)
    chat.script(text("OK, I did not create the ticket."))
    done = ask_confirm(
        user=alice, token=outcome.confirmation_token, approved=False, executor=executor
    )
    assert (done.status, done.message) == ("completed", "Action cancelled")
    assert done.response == "OK, I did not create the ticket."
    assert "jira_create_issue" not in [name for name, _ in executor.calls]
    told = chat.requests[-1].messages[-1]
    assert told["role"] == "tool" and "declined" in told["content"]
    assert AssistantRun.objects.get().status == "cancelled"


def test_an_expired_token_is_refused_and_nothing_runs(alice, chat, executor):
    outcome = _pending(alice, chat, executor)
    later = timezone.now() + timedelta(minutes=10, seconds=1)
    with time_machine.travel(later), pytest.raises(ApplicationError) as caught:
        ask_confirm(user=alice, token=outcome.confirmation_token, approved=True, executor=executor)
    assert (caught.value.status, caught.value.code) == (410, "confirmation_expired")
    assert [name for name, _ in executor.calls] == ["jira_search"]
    assert len(chat.requests) == 2


def test_bob_cannot_use_alices_token(alice, bob, chat, executor):
    outcome = _pending(alice, chat, executor)
    with pytest.raises(ApplicationError) as caught:
        ask_confirm(user=bob, token=outcome.confirmation_token, approved=True, executor=executor)
    assert (caught.value.status, caught.value.code) == (404, "confirmation_not_found")
    assert [name for name, _ in executor.calls] == ["jira_search"]
    # Still alice's to approve: bob's attempt did not use it up.
    assert PendingConfirmation.objects.get().used_at is None


def test_a_made_up_token_is_not_found(alice, chat, executor):
    with pytest.raises(ApplicationError) as caught:
        ask_confirm(user=alice, token="confirm_made_up", approved=True, executor=executor)
    assert caught.value.status == 404


def test_a_second_write_in_the_same_answer_is_not_run_but_told(alice, chat, executor):
    chat.script(
        tool_calls(
            ("jira_create_issue", CREATE),
            ("jira_create_issue", {**CREATE, "summary": "Second"}),
        ),
    )
    outcome = ask_run(user=alice, prompt=PROMPT, executor=executor, confirm=True)
    assert outcome.action == {"tool": "jira_create_issue", "arguments": CREATE}
    chat.script(text("Created one; the second needs its own approval."))
    ask_confirm(user=alice, token=outcome.confirmation_token, approved=True, executor=executor)
    assert executor.calls == [("jira_create_issue", CREATE)]
    results = [m for m in chat.requests[-1].messages if m["role"] == "tool"]
    assert len(results) == 2 and any("only one change" in m["content"] for m in results)


def test_without_confirm_a_write_runs_at_once(alice, chat, executor):
    chat.script(tool_calls(("jira_create_issue", CREATE)), text("Created KAN-9."))
    outcome = ask_run(user=alice, prompt=PROMPT, executor=executor)
    assert outcome.status == "completed" and executor.calls == [("jira_create_issue", CREATE)]


def test_expired_and_settled_confirmations_are_purged_by_the_scheduled_task(
    alice, chat, executor, settings
):
    waiting = _pending(alice, chat, executor)
    chat.script(
        tool_calls(("jira_create_issue", CREATE)),
        text("Created."),
        tool_calls(("jira_create_issue", CREATE)),
    )
    settled = ask_run(user=alice, prompt=PROMPT, executor=executor, confirm=True)
    ask_confirm(user=alice, token=settled.confirmation_token, approved=True, executor=executor)
    expired = ask_run(user=alice, prompt=PROMPT, executor=executor, confirm=True)
    PendingConfirmation.objects.filter(token_hash=_digest(expired.confirmation_token)).update(
        expires_at=timezone.now()
    )
    assert "assistant.tasks.purge_confirmations" in {
        entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()
    }
    assert purge_confirmations() == 2
    [left] = PendingConfirmation.objects.all()
    assert left.token_hash == _digest(waiting.confirmation_token)


def test_an_interactive_confirmation_saves_the_turn_to_its_session(alice, chat, executor):
    chat.script(tool_calls(("jira_create_issue", CREATE)))
    pending = ask_run(user=alice, prompt=PROMPT, executor=executor, confirm=True, interactive=True)
    assert not InteractiveSession.objects.exists()  # nothing saved while it waits
    chat.script(text("Created KAN-5."))
    done = ask_confirm(
        user=alice, token=pending.confirmation_token, approved=True, executor=executor
    )
    session = InteractiveSession.objects.get(pk=done.session_id)
    assert [m["role"] for m in session.messages] == ["user", "assistant", "tool", "assistant"]
    assert session.messages[-1]["content"] == "Created KAN-5."


def _digest(token):
    return hashlib.sha256(token.encode()).hexdigest()


def test_when_no_tool_can_run_the_approval_can_be_retried(alice, chat, executor):
    pending = _pending(alice, chat, executor)
    attempts = []

    def unreachable_once(arguments):
        attempts.append(arguments)
        if len(attempts) == 1:
            raise ProviderUnavailable("MCP server unreachable: try again.")
        return LocalResult('{"key": "KAN-2"}')

    executor.answers["jira_create_issue"] = unreachable_once
    with pytest.raises(ProviderUnavailable):
        ask_confirm(user=alice, token=pending.confirmation_token, approved=True, executor=executor)
    assert AssistantRun.objects.get().status == "pending_confirmation"
    chat.script(text("Created KAN-2."))
    done = ask_confirm(
        user=alice, token=pending.confirmation_token, approved=True, executor=executor
    )
    assert done.response == "Created KAN-2." and len(attempts) == 2
