"""Attack review of the assistant's runs, turns and streams (issue 11, second pass):
clients that go away mid-request, a conversation's turn while its approval is claimed."""

import asyncio
import os
import threading
from contextlib import suppress
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.core.cache import cache
from django.db import connection, connections
from django.utils import timezone
from rest_framework.test import APIRequestFactory, force_authenticate

from assistant import async_views, views
from assistant.events import _slot_key
from assistant.models import AssistantRun, InteractiveSession, PendingConfirmation
from assistant.services import confirm
from assistant.services.runs import run_confirm_start
from assistant.services.sessions import session_turn_claim, sessions_free_abandoned
from core.errors import Conflict
from tests.accounts.factories import UserFactory
from tests.fakes.openai_chat import text

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_redis_events(settings):
    settings.REDIS_URL = ""  # events in the database: nothing here reads them


def _request(user, method, path, data=None):
    factory = APIRequestFactory()
    if method == "get":
        request = factory.get(path, HTTP_ACCEPT="text/event-stream")
    else:
        request = factory.post(path, data, format="json")
    force_authenticate(request, user=user)
    return request


def _disconnect_during_the_view(monkeypatch, view, request, **kwargs):
    """Call the async ``view`` and cancel it (as Django's ASGI handler does when the client
    disconnects) while its APIView is still running in its thread; then let that finish."""
    entered, gate = threading.Event(), threading.Event()
    real = async_views._api

    def slow_api(*args, **kw):
        entered.set()
        gate.wait(10)
        return real(*args, **kw)

    monkeypatch.setattr(async_views, "_api", slow_api)

    async def scenario():
        task = asyncio.ensure_future(view(request, **kwargs))
        await asyncio.to_thread(entered.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()
        # Whatever the request left behind runs to its end (thread-sensitive work
        # queues behind the APIView's), with a moment for what follows it.
        for _ in range(50):
            await sync_to_async(lambda: None)()
            await asyncio.sleep(0.02)

    async_to_sync(scenario)()


def test_a_stream_whose_client_leaves_during_the_view_gives_its_slot_back(alice, monkeypatch):
    """Old code: the APIView took the slot in its thread, the cancelled view never got the
    response, so nothing released it: 8 such disconnects (a flaky phone) and every
    stream of the user was a 429 while they kept trying (each try renewed the count)."""
    run = AssistantRun.objects.create(owner=alice, mode="one_shot", prompt="Hi", status="done")
    request = _request(alice, "get", f"/ask/runs/{run.pk}/events")
    _disconnect_during_the_view(monkeypatch, async_views.ask_run_events, request, run_id=run.pk)
    assert (cache.get(_slot_key(alice.pk)) or 0) == 0


def test_an_ask_whose_client_leaves_during_the_view_is_still_queued(alice, chat, monkeypatch):
    """Old code: the run (and its conversation's turn) was stored but never queued: it
    stayed ``queued`` for ever and its conversation refused turns (409) until stale."""
    queued: list[int] = []
    monkeypatch.setattr(async_views, "run_enqueue", lambda *, run_id: queued.append(run_id))
    request = _request(alice, "post", "/ask", {"prompt": "List KAN", "interactive": True})
    _disconnect_during_the_view(monkeypatch, async_views.ask, request)
    run = AssistantRun.objects.get()
    assert queued == [run.pk]


def test_refused_streams_do_not_keep_a_leaked_count_alive(alice, settings):
    """Old code: every take renewed the count's lifetime, the refused ones too, so slots
    leaked by a killed process (a deploy) kept a user who kept trying at 429 for ever."""
    from assistant.events import stream_slot_take
    from core.errors import RateLimited

    if "redis" not in settings.CACHES["default"]["BACKEND"].lower():
        pytest.skip("reads the count's lifetime from Redis")
    key = _slot_key(alice.pk)
    cache.set(key, 8, timeout=30)  # 8 slots nobody will give back, lapsing in 30 s
    for _ in range(3):
        with pytest.raises(RateLimited):
            stream_slot_take(user_id=alice.pk)
    client = cache._cache.get_client(key)
    assert 0 < client.ttl(cache.make_and_validate_key(key)) <= 30
    assert cache.get(key) == 8


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent connections")
@pytest.mark.django_db(transaction=True)
def test_a_turn_cannot_take_the_conversation_while_its_approval_is_being_claimed(chat, monkeypatch):
    """Old code: the token was used up, then the run queued, in two commits; in between the
    run read as waiting for an approval that could no longer come, so another /ask (or the
    reaper) took the conversation and two turns ran on it (the last save erasing the
    other's messages)."""
    alice = UserFactory()
    session = InteractiveSession.objects.create(owner=alice, title="t", messages=[])
    run = AssistantRun.objects.create(
        owner=alice,
        session=session,
        mode="confirm",
        interactive=True,
        confirm=True,
        status=AssistantRun.Status.PENDING_CONFIRMATION,
        prompt="Create it",
    )
    token = "confirm_" + "x" * 43
    PendingConfirmation.objects.create(
        owner=alice,
        run=run,
        token_hash=confirm._hash(token),
        tool="jira_create_issue",
        arguments={},
        state={"session_id": session.pk},
        expires_at=timezone.now() + timedelta(minutes=5),
    )
    InteractiveSession.objects.filter(pk=session.pk).update(
        busy_run=run, turn_started_at=timezone.now()
    )
    claimed, gate = threading.Event(), threading.Event()
    real_claim = confirm._claim

    def slow_claim(**kwargs):
        row = real_claim(**kwargs)
        claimed.set()
        gate.wait(10)
        return row

    monkeypatch.setattr(confirm, "_claim", slow_claim)

    def approve() -> None:
        try:
            run_confirm_start(user=alice, token=token, approved=True)
        finally:
            connections.close_all()

    approving = threading.Thread(target=approve)
    approving.start()
    try:
        assert claimed.wait(10)
        other = AssistantRun.objects.create(
            owner=alice, session=session, mode="interactive", prompt="Hi", status="queued"
        )
        with pytest.raises(Conflict):
            session_turn_claim(session_id=session.pk, run=other)
        assert sessions_free_abandoned() == 0
    finally:
        gate.set()
        approving.join()
    session.refresh_from_db()
    assert session.busy_run_id == run.pk
    run.refresh_from_db()
    assert run.status == AssistantRun.Status.QUEUED


def _pending_run(user):
    run = AssistantRun.objects.create(
        owner=user,
        mode="confirm",
        confirm=True,
        status=AssistantRun.Status.PENDING_CONFIRMATION,
        prompt="Create it",
    )
    PendingConfirmation.objects.create(
        owner=user,
        run=run,
        token_hash=confirm._hash(f"confirm_{run.pk}"),
        tool="jira_create_issue",
        arguments={},
        state={},
        expires_at=timezone.now() + timedelta(minutes=5),
    )
    return run


@pytest.mark.django_db(transaction=True)
def test_an_open_events_stream_holds_no_database_connection(settings):
    """Old code: the stream read the run's state and kept that connection for its whole
    wait (minutes). With DATABASE_POOL_SIZE (10 in docker-compose) two users' open streams
    took a web process's whole pool: every other request on it waited 30 s and failed."""
    if not os.environ.get("REDIS_URL"):
        pytest.skip("the events follow Redis (the database fallback polls)")
    settings.REDIS_URL = os.environ["REDIS_URL"]
    run = _pending_run(UserFactory())

    async def scenario() -> bool:
        stream = async_views._stream(run.pk, 0)
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.5)  # the stream waits for the approval
        held = await sync_to_async(lambda: connection.connection is not None)()
        waiting.cancel()
        with suppress(asyncio.CancelledError):
            await waiting
        await stream.aclose()
        return held

    assert async_to_sync(scenario)() is False


@pytest.mark.django_db(transaction=True)
def test_the_pages_stream_holds_no_database_connection_while_it_relays(chat, monkeypatch):
    """Old code: the page's stream thread kept the connection it stored the run with for
    the whole run (up to the task's time limit)."""
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("Django never closes an in-memory SQLite database's connection")
    alice = UserFactory()
    monkeypatch.setattr(views, "run_enqueue", lambda *, run_id: None)
    held: list[bool] = []

    async def relay(run_id, after, emit):
        held.append(await sync_to_async(lambda: connection.connection is not None)())
        return {}

    monkeypatch.setattr(views, "_relay", relay)
    fields = {"prompt": "Hi", "interactive": False, "confirm": False, "mode": "one_shot"}
    thread = threading.Thread(target=views._run, args=(alice, fields, lambda e, d: None))
    thread.start()
    thread.join(10)
    assert held == [False]


def test_a_call_cut_off_by_the_soft_time_limit_gives_its_hold_back(chat, executor, settings):
    """Old code: only an ApplicationError released the call's hold; the soft time limit
    (SoftTimeLimitExceeded, raised inside the call) or a bug left it open, the run failed,
    and no reaper looks at failed runs: the worst-case estimate stayed set aside from the
    user's credits for an hour (``HOLD_TTL``), blocking asks on a small balance."""
    from celery.exceptions import SoftTimeLimitExceeded

    from assistant.services.ask import ask_run
    from billing.models import CreditHold

    alice = UserFactory()

    def cut_off(delta: str) -> None:
        raise SoftTimeLimitExceeded()

    chat.script(text("A long answer, cut off."))
    with pytest.raises(SoftTimeLimitExceeded):
        ask_run(user=alice, prompt="Hi", executor=executor, on_text=cut_off)
    assert list(CreditHold.objects.values_list("status", flat=True)) == ["released"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent claims need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_racing_api_approvals_resume_the_run_once_with_one_new_token(chat):
    """/ask/confirm's start (claim, resume and new token in one transaction) raced 6
    times: one resumes the run, the others are told the token was used."""
    from tests.helpers.races import run_at_once

    alice = UserFactory()
    run = _pending_run(alice)

    def approve(n: int) -> str:
        try:
            return run_confirm_start(
                user=alice, token=f"confirm_{run.pk}", approved=True
            ).confirmation_token
        except Conflict as exc:
            return exc.code

    results = run_at_once(approve, 6)
    tokens = [r for r in results if r.startswith("confirm_")]
    assert len(tokens) == 1 and sorted(set(results) - set(tokens)) == ["confirmation_used"]
    run.refresh_from_db()
    assert run.status == AssistantRun.Status.QUEUED
    assert run.confirm_token_hash == confirm._hash(tokens[0])


@pytest.fixture
def broker_down(monkeypatch):
    from kombu.exceptions import OperationalError

    from assistant.tasks import assistant_run_execute

    def refuse(*args, **kwargs):
        raise OperationalError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setattr(assistant_run_execute, "apply_async", refuse)


def test_an_ask_the_queue_refuses_fails_and_frees_its_conversation(
    alice, alice_api, chat, broker_down
):
    """Old code: a 500, and the run stayed ``queued`` for ever holding its conversation
    (409 turn_in_progress on every follow-up until the claim went stale)."""
    session = InteractiveSession.objects.create(owner=alice, title="t", messages=[])
    body = {"prompt": "List KAN", "interactive": True, "session_id": session.pk}
    response = alice_api.post("/ask", body, format="json")
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "queue_unavailable"
    run = AssistantRun.objects.get()
    assert run.status == AssistantRun.Status.FAILED
    session.refresh_from_db()
    assert session.busy_run_id is None


def test_an_approval_the_queue_refuses_waits_again_for_the_same_token(
    alice, alice_api, chat, broker_down
):
    """Old code: a 500 with the token used up and the run queued for ever: the approval
    could not be given again (409 confirmation_used)."""
    run = _pending_run(alice)
    body = {"confirmation_token": f"confirm_{run.pk}", "approved": True}
    response = alice_api.post("/ask/confirm", body, format="json")
    assert response.status_code == 503, response.content
    run.refresh_from_db()
    assert run.status == AssistantRun.Status.PENDING_CONFIRMATION
    pending = PendingConfirmation.objects.get(run=run)
    assert pending.used_at is None and pending.approved is None


def test_a_confirmation_token_is_redacted_from_logs():
    """Old code: a confirmation token written to a log line (an error repr, a body
    logged while debugging) stayed readable: whoever reads logs could approve the write."""
    from core.logging import redact

    token = "confirm_" + "A1b2-_" * 7 + "z"
    line = f"POST /ask/confirm body={{'confirmation_token': '{token}', 'approved': True}}"
    assert token not in redact(line)
    assert "confirm_token_hash" in redact("field confirm_token_hash changed")


def test_the_purge_keeps_an_approval_whose_run_waits_for_its_worker(alice):
    """Old code: the hourly purge deleted every used confirmation, also one just approved
    whose run was still queued: the worker then found no answer and ran the prompt over
    from round 1, whose call ids were metered already (first wins), so those model calls
    were neither metered nor charged."""
    from assistant.services.confirm import confirmations_purge

    run = _pending_run(alice)
    PendingConfirmation.objects.filter(run=run).update(used_at=timezone.now(), approved=True)
    AssistantRun.objects.filter(pk=run.pk).update(status=AssistantRun.Status.QUEUED)
    assert confirmations_purge() == 0
    AssistantRun.objects.filter(pk=run.pk).update(status=AssistantRun.Status.COMPLETED)
    assert confirmations_purge() == 1
