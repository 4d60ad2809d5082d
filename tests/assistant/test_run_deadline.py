"""A run stops starting rounds past the task's soft time limit: the assistant's worker runs
a thread pool, which enforces no time limit, and the reaper fails runs still running past
the hard one — a live run must end before that."""

from datetime import timedelta

import pytest
from django.utils import timezone

from assistant.models import AssistantRun
from assistant.services import runs
from assistant.services.runs import run_ask_start, run_execute
from tests.fakes.openai_chat import text, tool_calls

pytestmark = pytest.mark.django_db

SEARCH = {"jql": "project = KAN"}


@pytest.fixture(autouse=True)
def local_tools(monkeypatch, executor):
    monkeypatch.setattr(runs, "tool_executor", lambda user: executor)


def test_a_run_past_the_soft_time_limit_stops_before_its_next_model_call(
    alice, chat, executor, settings, monkeypatch
):
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 240
    chat.script(tool_calls(("jira_search", SEARCH)), text("KAN has one ticket."))
    run = run_ask_start(user=alice, prompt="List KAN").run
    real_now, real_call = timezone.now, executor.call
    executed = []

    def tool_then_five_minutes_pass(*args, **kwargs):
        executed.append(args)
        monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(minutes=5))
        return real_call(*args, **kwargs)

    monkeypatch.setattr(executor, "call", tool_then_five_minutes_pass)
    assert run_execute(run_id=run.pk) == "failed"
    run.refresh_from_db()
    assert run.status == AssistantRun.Status.FAILED
    assert (run.error_code, run.error_status) == ("run_too_long", 504)
    assert "4 minutes" in run.error_message
    assert len(executed) == 1
    assert len(chat.requests) == 1  # the second model call was never made


def test_a_run_within_the_limit_is_not_stopped(alice, chat, settings):
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 240
    chat.script(tool_calls(("jira_search", SEARCH)), text("KAN has one ticket."))
    run = run_ask_start(user=alice, prompt="List KAN").run
    assert run_execute(run_id=run.pk) == "completed"
    assert len(chat.requests) == 2
