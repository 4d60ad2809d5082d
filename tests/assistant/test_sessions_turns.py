"""One turn at a time per conversation: a second /ask on a conversation whose turn still
runs (or waits for approval) is a 409 with nothing stored, so no turn's messages are
lost to another's save; the conversation is free again once the run ends. And what a
conversation stores is bounded (whole turns, newest kept)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from assistant import async_views
from assistant.models import AssistantRun, InteractiveSession, PendingConfirmation
from assistant.services import runs
from assistant.services.ask import ask_run
from assistant.services.history import STORED_MESSAGES, history_cap
from assistant.services.runs import run_ask_start
from core.errors import Conflict
from tests.accounts.factories import UserFactory
from tests.assistant.chat import history_turn
from tests.fakes.openai_chat import text, tool_calls
from tests.helpers.races import run_at_once

CREATE = {"project_key": "KAN", "summary": "Fix login bug", "issue_type": "Task"}


@pytest.fixture
def local_tools(monkeypatch, executor, settings):
    settings.REDIS_URL = ""
    monkeypatch.setattr(runs, "tool_executor", lambda user: executor)
    return executor


def _session(owner, messages=()):
    return InteractiveSession.objects.create(owner=owner, title="t", messages=list(messages))


@pytest.mark.django_db
def test_a_second_turn_while_one_runs_is_a_409_and_stores_nothing(
    alice, alice_api, chat, local_tools, monkeypatch, settings
):
    session = _session(alice)
    settings.ASK_SYNC_TIMEOUT = 0.3
    monkeypatch.setattr(async_views, "run_enqueue", lambda *, run_id: None)  # no worker yet
    first = alice_api.post("/ask", {"prompt": "first", "session_id": session.pk}, format="json")
    assert first.status_code == 202, first.content
    second = alice_api.post("/ask", {"prompt": "second", "session_id": session.pk}, format="json")
    assert second.status_code == 409, second.content
    error = second.json()["error"]
    assert error["code"] == "turn_in_progress"
    assert "already running in this conversation" in error["message"]
    assert AssistantRun.objects.count() == 1 and chat.requests == []


@pytest.mark.django_db
def test_the_conversation_is_free_when_the_answer_goes_out(alice, chat, local_tools, monkeypatch):
    """Old code: the task freed the conversation after publishing ``done``, so a client
    that sent its follow-up the moment the answer arrived could get a 409."""
    session = _session(alice)
    chat.script(text("Hello."))
    run = run_ask_start(user=alice, prompt="hi", session_id=session.pk).run
    busy_at_done: list[int | None] = []
    publish = runs.RunEventWriter.publish

    def recording(writer, kind, data=None):
        if kind == "done":
            busy_at_done.append(InteractiveSession.objects.get(pk=session.pk).busy_run_id)
        publish(writer, kind, data)

    monkeypatch.setattr(runs.RunEventWriter, "publish", recording)
    assert runs.run_execute(run_id=run.pk) == "completed"
    assert busy_at_done == [None]


@pytest.mark.django_db
def test_the_next_turn_is_taken_once_the_run_has_ended(alice, alice_api, chat, local_tools):
    session = _session(alice)
    for n in range(2):
        chat.script(text(f"answer {n}"))
        response = alice_api.post(
            "/ask", {"prompt": f"question {n}", "session_id": session.pk}, format="json"
        )
        assert response.status_code == 200, response.content
    session.refresh_from_db()
    assert [m["content"] for m in session.messages] == [
        "question 0",
        "answer 0",
        "question 1",
        "answer 1",
    ]
    assert session.busy_run_id is None


@pytest.mark.django_db
def test_a_turn_waiting_for_approval_holds_the_conversation_until_it_is_answered(
    alice, alice_api, chat, local_tools
):
    session = _session(alice)
    chat.script(tool_calls(("jira_create_issue", CREATE)))
    pending = alice_api.post(
        "/ask", {"prompt": "Create", "confirm": True, "session_id": session.pk}, format="json"
    ).json()
    assert pending["status"] == "pending_confirmation"
    busy = alice_api.post("/ask", {"prompt": "and?", "session_id": session.pk}, format="json")
    assert busy.status_code == 409

    chat.script(text("Alright, nothing created."))
    cancelled = alice_api.post(
        "/ask/confirm",
        {"confirmation_token": pending["confirmation_token"], "approved": False},
        format="json",
    )
    assert cancelled.status_code == 200, cancelled.content
    chat.script(text("Next."))
    nxt = alice_api.post("/ask", {"prompt": "and?", "session_id": session.pk}, format="json")
    assert nxt.status_code == 200, nxt.content


@pytest.mark.django_db
def test_an_expired_approval_frees_the_conversation(alice, chat, local_tools):
    session = _session(alice)
    chat.script(tool_calls(("jira_create_issue", CREATE)))
    start = run_ask_start(user=alice, prompt="Create", confirm=True, session_id=session.pk)
    runs.run_execute(run_id=start.run.pk)
    with pytest.raises(Conflict):
        run_ask_start(user=alice, prompt="again", session_id=session.pk)
    PendingConfirmation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    again = run_ask_start(user=alice, prompt="again", session_id=session.pk)
    assert InteractiveSession.objects.get().busy_run_id == again.run.pk


@pytest.mark.django_db
def test_a_stale_claim_does_not_lock_the_conversation_for_ever(alice, chat, settings):
    session = _session(alice)
    start = run_ask_start(user=alice, prompt="lost", session_id=session.pk)
    InteractiveSession.objects.update(turn_started_at=timezone.now() - timedelta(hours=1))
    again = run_ask_start(user=alice, prompt="again", session_id=session.pk)
    assert again.run.pk != start.run.pk
    assert InteractiveSession.objects.get().busy_run_id == again.run.pk


@pytest.mark.django_db
def test_bob_cannot_take_a_turn_in_alices_conversation(alice, bob_api, chat):
    session = _session(alice)
    response = bob_api.post("/ask", {"prompt": "hi", "session_id": session.pk}, format="json")
    assert response.status_code == 404
    assert InteractiveSession.objects.get().busy_run_id is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent claims need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_racing_turns_on_one_conversation_start_exactly_one(chat):
    owner = UserFactory()
    session = _session(owner)
    racers = 8

    def turn(n: int) -> str:
        try:
            run_ask_start(user=owner, prompt=f"turn {n}", session_id=session.pk)
        except Conflict as exc:
            return exc.code
        return "started"

    results = run_at_once(turn, racers)
    assert sorted(results) == ["started"] + ["turn_in_progress"] * (racers - 1)
    assert AssistantRun.objects.count() == 1
    assert InteractiveSession.objects.get().busy_run_id == AssistantRun.objects.get().pk


def test_the_stored_history_keeps_the_newest_whole_turns():
    messages = [m for n in range(60) for m in history_turn(n)]  # 240 messages
    kept = history_cap(messages)
    assert len(kept) == STORED_MESSAGES and kept == messages[-STORED_MESSAGES:]
    # Never a tool result without its call: the cut falls between turns.
    assert kept[0] == {"role": "user", "content": "question 10"}
    odd = [{"role": "user", "content": "q"}, *history_turn(1)[1:3]] * 3  # 3-message turns
    assert history_cap(odd, max_messages=7) == odd[-6:]


def test_a_turn_longer_than_the_cap_is_kept_whole():
    long_turn = [{"role": "user", "content": "q"}] + history_turn(1)[1:3] * 150
    assert history_cap(long_turn) == long_turn


@pytest.mark.django_db
def test_a_long_conversation_stores_at_most_its_newest_turns(alice, chat, executor):
    session = _session(alice, [m for n in range(50) for m in history_turn(n)])  # 200 messages
    chat.script(text("the newest answer"))
    ask_run(user=alice, prompt="one more", executor=executor, session_id=session.pk)
    stored = InteractiveSession.objects.get().messages
    assert len(stored) <= STORED_MESSAGES
    assert stored[0] == {"role": "user", "content": "question 1"}  # turn 0 dropped whole
    assert stored[-2:] == [
        {"role": "user", "content": "one more"},
        {"role": "assistant", "content": "the newest answer"},
    ]


@pytest.mark.django_db
def test_the_answer_goes_out_though_freeing_the_conversation_failed(
    alice, chat, local_tools, monkeypatch
):
    session = _session(alice)
    chat.script(text("Hello."))
    run = run_ask_start(user=alice, prompt="hi", session_id=session.pk).run
    published: list[str] = []
    publish = runs.RunEventWriter.publish

    def recording(writer, kind, data=None):
        published.append(kind)
        publish(writer, kind, data)

    def broken(*, run_id):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(runs.RunEventWriter, "publish", recording)
    monkeypatch.setattr(runs, "session_turn_end", broken)
    assert runs.run_execute(run_id=run.pk) == "completed"
    assert published[-1] == "done"


@pytest.mark.django_db
def test_a_run_whose_turn_cannot_be_saved_fails_instead_of_running_on(
    alice, chat, local_tools, monkeypatch
):
    """Old code: a refusal raised while the run's end was being stored reached the
    waiting request as failed, but left the run itself `running` until the reaper."""
    from assistant.services import ask

    def refused(conversation):
        raise Conflict("The conversation changed meanwhile.", code="conversation_changed")

    monkeypatch.setattr(ask, "_session_save", refused)
    session = _session(alice)
    chat.script(text("Hello."))
    run = run_ask_start(user=alice, prompt="hi", session_id=session.pk).run
    assert runs.run_execute(run_id=run.pk) == "failed"
    run.refresh_from_db()
    assert (run.status, run.error_code, run.error_status) == ("failed", "conversation_changed", 409)
    assert run.finished_at is not None
    assert InteractiveSession.objects.get(pk=session.pk).busy_run_id is None
