"""The reaper (beat, every minute): a run whose worker died stays ``running`` for ever
(a redelivered task skips a claimed run), so runs past the task's time limit are failed,
their credit holds released (nothing of theirs was charged), their conversation freed
and a ``done`` published so waiting streams end."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from assistant.models import (
    AssistantRun,
    AssistantRunEvent,
    InteractiveSession,
    PendingConfirmation,
)
from assistant.services.sessions import session_turn_claim
from assistant.tasks import reap_runs
from billing.models import CreditHold, CreditLedgerEntry
from billing.selectors import billing_balance
from billing.services import credits_reserve
from core.errors import Conflict

pytestmark = pytest.mark.django_db

STARTER = 1_000_000  # BILLING_STARTER_GRANT_USD's default, in micro-dollars


@pytest.fixture(autouse=True)
def _database_events(settings):
    settings.REDIS_URL = ""  # events as rows, read back below
    settings.CELERY_TASK_TIME_LIMIT = 300


def _run(owner, *, started_seconds_ago, status="running", session=None):
    return AssistantRun.objects.create(
        owner=owner,
        mode="interactive" if session else "one_shot",
        interactive=session is not None,
        session=session,
        prompt="Create it",
        status=status,
        started_at=timezone.now() - timedelta(seconds=started_seconds_ago),
    )


def test_a_run_running_past_the_time_limit_fails_and_its_stream_ends(alice):
    dead = _run(alice, started_seconds_ago=300 + 61)
    assert reap_runs() == 1
    dead.refresh_from_db()
    assert dead.status == "failed" and dead.error_code == "run_lost"
    assert dead.error_status == 500 and "check Jira first" in dead.error_message
    assert dead.finished_at is not None
    done = AssistantRunEvent.objects.get(run=dead)
    assert done.kind == "done" and done.data["status"] == "failed"
    assert done.data["error"]["code"] == "run_lost"
    assert reap_runs() == 0  # once: it is no longer running


def test_runs_within_the_limit_or_not_running_are_left_alone(alice):
    live = _run(alice, started_seconds_ago=300)  # the hard limit has not passed its margin
    pending = _run(alice, started_seconds_ago=3600, status="pending_confirmation")
    queued = _run(alice, started_seconds_ago=3600, status="queued")
    assert reap_runs() == 0
    assert [r.status for r in AssistantRun.objects.filter(pk__in=[live.pk])] == ["running"]
    assert AssistantRun.objects.get(pk=pending.pk).status == "pending_confirmation"
    assert AssistantRun.objects.get(pk=queued.pk).status == "queued"
    assert not AssistantRunEvent.objects.exists()


def test_the_reaped_runs_holds_are_released_and_nothing_charged(alice):
    """A run's calls on credits are recorded only with their charge, after it answers: a
    worker that died mid-run recorded none, so its holds go back whole."""
    dead = _run(alice, started_seconds_ago=1000)
    first = credits_reserve(
        user=alice, estimate_micros=200_000, reference=f"assistant-run-{dead.pk}-1"
    )
    again = credits_reserve(
        user=alice, estimate_micros=200_000, reference=f"assistant-run-{dead.pk}-3"
    )
    assert reap_runs() == 1
    for hold in (first, again):
        hold.refresh_from_db()
        assert hold.status == CreditHold.Status.RELEASED and hold.closed_at is not None
    assert billing_balance(user=alice) == STARTER
    assert not CreditLedgerEntry.objects.filter(kind="usage").exists()
    assert reap_runs() == 0


def test_another_users_holds_are_not_touched(alice, bob):
    dead = _run(alice, started_seconds_ago=1000)
    bobs = credits_reserve(user=bob, estimate_micros=1000, reference="assistant-run-999999-1")
    reap_runs()
    bobs.refresh_from_db()
    assert bobs.status == CreditHold.Status.OPEN
    assert AssistantRun.objects.get(pk=dead.pk).status == "failed"


def test_the_reaped_runs_conversation_takes_a_new_turn(alice):
    session = InteractiveSession.objects.create(owner=alice, title="t", messages=[])
    dead = _run(alice, started_seconds_ago=1000, session=session)
    session_turn_claim(session_id=session.pk, run=dead)
    nxt = _run(alice, started_seconds_ago=0, status="queued", session=session)
    with pytest.raises(Conflict):
        session_turn_claim(session_id=session.pk, run=nxt)  # the dead run still holds it
    reap_runs()
    assert InteractiveSession.objects.get().busy_run_id is None
    session_turn_claim(session_id=session.pk, run=nxt)
    assert InteractiveSession.objects.get().busy_run_id == nxt.pk


def _queued(owner, *, stored_seconds_ago, session=None):
    run = _run(owner, started_seconds_ago=0, status="queued", session=session)
    stored = timezone.now() - timedelta(seconds=stored_seconds_ago)
    AssistantRun.objects.filter(pk=run.pk).update(created_at=stored, started_at=None)
    return run


def _resumed(owner, *, approved_seconds_ago):
    """A run stored long ago, paused, then queued again by an approval."""
    run = _queued(owner, stored_seconds_ago=3600)
    PendingConfirmation.objects.create(
        owner=owner,
        run=run,
        token_hash=f"hash-{run.pk}",
        tool="jira_create_issue",
        expires_at=timezone.now(),
        used_at=timezone.now() - timedelta(seconds=approved_seconds_ago),
        approved=True,
    )
    return run


def test_a_run_the_queue_lost_fails_as_not_started_and_frees_its_conversation(alice):
    """Old code: a run whose task the broker lost stayed queued for ever (its stream and
    /ask/runs/<id> said "running" for good)."""
    session = InteractiveSession.objects.create(owner=alice, title="t")
    lost = _queued(alice, stored_seconds_ago=300 + 61, session=session)
    session_turn_claim(session_id=session.pk, run=lost)
    assert reap_runs() == 1
    lost.refresh_from_db()
    assert (lost.status, lost.error_code, lost.error_status) == ("failed", "run_not_started", 503)
    assert "nothing was done" in lost.error_message
    done = AssistantRunEvent.objects.get(run=lost)
    assert done.data["error"]["code"] == "run_not_started"
    assert InteractiveSession.objects.get(pk=session.pk).busy_run_id is None
    assert reap_runs() == 0


def test_a_queued_run_is_reaped_by_how_long_ago_it_was_stored_or_resumed(alice):
    recent = _queued(alice, stored_seconds_ago=300)
    resumed_now = _resumed(alice, approved_seconds_ago=30)
    resumed_long_ago = _resumed(alice, approved_seconds_ago=300 + 61)
    assert reap_runs() == 1
    statuses = dict(AssistantRun.objects.values_list("pk", "status"))
    assert statuses == {
        recent.pk: "queued",
        resumed_now.pk: "queued",
        resumed_long_ago.pk: "failed",
    }
