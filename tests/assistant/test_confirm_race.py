"""Racing approvals of one token on PostgreSQL: exactly one runs the action."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from assistant.services.ask import ask_confirm, ask_run
from core.errors import ApplicationError
from tests.accounts.factories import UserFactory
from tests.fakes.openai_chat import text, tool_calls

CREATE = {"project_key": "KAN", "summary": "Fix login bug", "issue_type": "Task"}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent claims need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_racing_approvals_run_the_action_once(chat, executor):
    alice = UserFactory()
    chat.script(tool_calls(("jira_create_issue", CREATE)))
    token = ask_run(user=alice, prompt="Create it", executor=executor, confirm=True)
    racers = 8
    chat.script(*[text("Created.") for _ in range(racers)])
    start = threading.Barrier(racers)
    outcomes: list[str] = []

    def approve() -> None:
        try:
            start.wait()
            ask_confirm(
                user=alice, token=token.confirmation_token, approved=True, executor=executor
            )
            outcomes.append("completed")
        except ApplicationError as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=approve) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["completed"] + ["confirmation_used"] * (racers - 1)
    assert executor.calls == [("jira_create_issue", CREATE)]
