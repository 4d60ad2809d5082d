"""Attack review 22: request threads kept between ASGI requests (core.asgi_handler), the
prepared statements' None variants, expressions and dates (core.prepared), metering by
prepared statements, a run's end writing only what changed, and /ask's hand-built body.

Three tests failed on the code reviewed (each marked "Found by the review": ints past int4
wrapped in prepared updates, a naive datetime ran prepared, kept threads carried a test's
database connection into the next test on SQLite); the rest guard risks probed and found
handled."""

from __future__ import annotations

import asyncio
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.db.models import F

from assistant.models import AssistantRun
from assistant.serializers import AskDataSerializer, PendingDataSerializer, ask_body
from assistant.services.ask import AskOutcome, ask_confirm, ask_run
from core.asgi_handler import KayASGIHandler
from core.prepared import PreparedQuery, PreparedUpdate
from keys.models import ApiKey
from tests.core import attack22_urls
from tests.fakes.openai_chat import text, tool_calls
from tests.keys.factories import ApiKeyFactory, ProjectFactory
from usage.models import MeteredLlmCall, UsageBucket, UsageDaily
from usage.services import LlmCall, usage_record_llm_call, usage_record_llm_calls

needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL binds prepared values as Int4/Int8"
)
AT = datetime(2026, 3, 2, 14, 25, 7, tzinfo=UTC)
NO_PRICE: dict[Any, Any] = {("openai", "gpt-x"): None}


# --- 1. ASGI request threads (core.asgi_handler) ---------------------------------------


# Each test its own handler (config.asgi's, with threads of its own): threads kept by
# config.asgi.application outlive a test, with that thread's database connection.
@pytest.fixture
def application() -> KayASGIHandler:
    return KayASGIHandler()


def asgi_client(application: KayASGIHandler) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://127.0.0.1"
    )


async def _settle() -> None:
    await asyncio.sleep(0.05)  # a thread is kept once its no-op has run


@pytest.mark.urls("tests.core.attack22_urls")
def test_a_client_gone_mid_view_keeps_its_thread_busy_until_the_view_is_done(application):
    """A client disconnects while its sync view runs: Django cancels the request, but the
    view goes on in its thread. Another request meanwhile must get another thread, and the
    thread is given to a later request only once the view (and its request's end) ran."""
    attack22_urls.started.clear()
    attack22_urls.release.clear()
    attack22_urls.finished_on.clear()
    sent: list[dict[str, Any]] = []

    async def scenario() -> tuple[str, str, str]:
        disconnect = asyncio.Event()
        body_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await disconnect.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/block",
            "raw_path": b"/block",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1")],
            "client": ("127.0.0.1", 1234),
            "server": ("127.0.0.1", 80),
        }
        blocked = asyncio.ensure_future(application(scope, receive, send))
        await asyncio.to_thread(attack22_urls.started.wait, 5)
        disconnect.set()  # the client went away while the view runs
        await asyncio.sleep(0.05)
        async with asgi_client(application) as client:
            meanwhile = (await client.get("/thread")).text
            await _settle()
            attack22_urls.release.set()
            await asyncio.wait_for(blocked, 5)
            await _settle()
            # Both threads are idle again: the next two requests at once take both.
            later = await asyncio.gather(client.get("/thread"), client.get("/thread"))
        return meanwhile, later[0].text, later[1].text

    meanwhile, later_a, later_b = async_to_sync(scenario)()
    [view_thread] = attack22_urls.finished_on
    assert meanwhile != view_thread  # never two requests on one thread at once
    assert view_thread in {later_a, later_b}  # kept once its view was done
    assert not [m for m in sent if m["type"] == "http.response.start"]  # nothing sent


@pytest.mark.urls("tests.core.attack22_urls")
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor == "sqlite", reason="the in-memory test database ignores close()"
)
def test_a_transaction_left_open_by_one_request_is_not_the_next_users(application):
    """A (buggy) view leaves autocommit off with a transaction begun; the next request
    served on the same kept thread gets a clean connection, not that transaction."""

    async def scenario() -> tuple[str, dict[str, Any]]:
        async with asgi_client(application) as client:
            left = await client.get("/leave-open")
            await _settle()
            state = await client.get("/state")
            return left.text, state.json()

    left_on, state = async_to_sync(scenario)()
    assert state["thread"] == left_on  # the same thread, reused
    assert state["autocommit"] is True and state["in_atomic_block"] is False


# Found by the review (low, the test suite on SQLite): a kept request thread keeps its thread-local
# database connection after the request, and the in-memory test database ignores close():
# a later test served on that thread runs close_old_connections on it (request_started)
# and hits pytest-django's blocker (the request fails). config.asgi.application's threads
# outlive each test, so on SQLite running tests/accounts/test_login_asgi.py and then
# tests/core/test_asgi_threads.py fails the latter (PostgreSQL closes the connection at
# the request's end).
@pytest.mark.urls("tests.core.attack22_urls")
@pytest.mark.django_db(transaction=True)
# Fixed in the suite: tests/conftest.py ends each test's kept threads (forget_idle), as
# this test does between its "tests".
def test_a_kept_thread_serves_a_request_that_may_not_use_the_database(
    application, django_db_blocker
):
    async def scenario() -> tuple[int, int]:
        async with asgi_client(application) as client:
            used = await client.get("/state")  # an earlier test's request, using the DB
            await _settle()
            application.threads.forget_idle()  # the test ends (tests/conftest.py)
            with django_db_blocker.block():  # as for a later test without the database
                plain = await client.get("/thread")
            return used.status_code, plain.status_code

    assert async_to_sync(scenario)() == (200, 200)


# --- 2. core.prepared: ints bound as their stand-in's Int4 -------------------------------


def _bucket(owner: Any, **figures: int) -> UsageBucket:
    return UsageBucket.objects.create(
        owner=owner,
        source="kay",
        provider="openai",
        model="gpt-x",
        bucket_start=AT.replace(minute=0, second=0),
        granularity="hour",
        **figures,
    )


_ADD_COST = PreparedUpdate(
    lambda pk, n: (UsageBucket.objects.filter(pk=pk), {"cost_micros": F("cost_micros") + n})
)


# Found by the review (medium): _Statement.bind wraps each int as its stand-in was compiled, and
# an int in an expression (F(...) + n) compiles as psycopg's Int4 (Django's Value(int) is an
# IntegerField). Bound server-side, an Int4 past 2**31 - 1 wraps around silently: adding
# 3_000_000_000 to a bigint column adds -1_294_967_296. The ORM (client-side binding) adds it
# right.
@needs_postgresql
# Found by the review (F()+n bound as Int4 wrapped past int4): such a value now goes to the ORM.
def test_an_update_adding_more_than_int4_holds_adds_what_the_orm_adds(alice, db):
    bucket = _bucket(alice, cost_micros=1)
    _ADD_COST.run(pk=bucket.pk, n=1)  # compiled (and run) with a small value
    UsageBucket.objects.filter(pk=bucket.pk).update(cost_micros=F("cost_micros") + 3_000_000_000)
    orm = UsageBucket.objects.get(pk=bucket.pk).cost_micros
    assert orm == 3_000_000_002  # the ORM adds it right
    _ADD_COST.run(pk=bucket.pk, n=3_000_000_000)
    assert UsageBucket.objects.get(pk=bucket.pk).cost_micros == orm + 3_000_000_000


# Found by the review (medium), the same seen from metering: BucketRow accepts figures up to
# 10**12, but the hour bucket's and the day row's increments (_BUCKET_ADD, _DAILY_ADD) wrap each
# figure to a signed 32-bit int: a second call of 2**32 + 5 tokens adds 5. (Negative wraps break
# the columns' >= 0 checks instead and the call is not recorded at all.)
@needs_postgresql
# Found by the review (metered figures past int4 wrapped): fixed as above.
def test_metering_counts_a_figure_past_int4_in_its_bucket_and_its_day(alice, db):
    big = 2**32 + 5
    for tokens in (10, big):
        _record(alice, tokens=tokens)
    [bucket] = UsageBucket.objects.filter(owner=alice)
    [day] = UsageDaily.objects.filter(owner=alice)
    assert sum(MeteredLlmCall.objects.values_list("input_tokens", flat=True)) == big + 10
    assert (bucket.input_tokens, day.input_tokens) == (big + 10, big + 10)


# Found by the review (low, latent): _stand_in refuses naive datetimes ("not prepared") but
# _Statement.fits checks only the type: a naive datetime given after an aware one compiled the
# statement is bound as it is, read by PostgreSQL in the connection's zone (UTC), while the ORM
# makes it aware in TIME_ZONE. Harmless while TIME_ZONE is "UTC", as it is today.
@needs_postgresql
# Found by the review (a naive datetime ran prepared): it now goes to the ORM.
def test_a_naive_datetime_after_an_aware_one_gives_the_orms_rows(alice, db, settings):
    settings.TIME_ZONE = "Europe/Paris"
    key = ApiKeyFactory(owner=alice)
    made_before = PreparedQuery(
        lambda at: ApiKey.objects.filter(created_at__lte=at).values_list("pk", flat=True)
    )
    assert made_before.all(at=key.created_at) == [key.pk]  # compiled with an aware one
    naive = (key.created_at + timedelta(minutes=30)).replace(tzinfo=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "received a naive datetime"
        orm = list(ApiKey.objects.filter(created_at__lte=naive).values_list("pk", flat=True))
        assert made_before.all(at=naive) == orm


def test_a_none_variant_and_a_value_variant_never_swap_rows(alice, bob, db):
    """One statement per set of None arguments: run in turns, each call still gets the
    rows of its own values (IS NULL for None, = for a value), never the other variant's."""
    mine = ApiKeyFactory(owner=alice, project=ProjectFactory(owner=alice))
    loose = ApiKeyFactory(owner=alice, project=None)
    theirs = ApiKeyFactory(owner=bob, project=None)
    query = PreparedQuery(
        lambda owner_id, project_id: ApiKey.objects.filter(
            owner_id=owner_id, project_id=project_id
        ).values_list("pk", flat=True)
    )
    for _ in range(2):
        assert query.all(owner_id=alice.pk, project_id=None) == [loose.pk]
        assert query.all(owner_id=alice.pk, project_id=mine.project_id) == [mine.pk]
        assert query.all(owner_id=bob.pk, project_id=None) == [theirs.pk]
        assert query.all(owner_id=bob.pk, project_id=mine.project_id) == []
        assert query.all(owner_id=alice.pk, project_id=str(mine.project_id)) == [mine.pk]
        assert query.all(owner_id=True, project_id=None) == list(
            ApiKey.objects.filter(owner_id=True, project_id=None).values_list("pk", flat=True)
        )


# --- 3. Metering through prepared statements ---------------------------------------------


def _record(owner: Any, api_key: Any = None, tokens: int = 100, call_id: str = "") -> Any:
    return usage_record_llm_call(
        owner=owner,
        api_key=api_key,
        call_id=call_id or str(uuid.uuid4()),
        provider="openai",
        model="gpt-x",
        input_tokens=tokens,
        output_tokens=1,
        at=AT,
        prices=NO_PRICE,
    )


def test_metered_figures_go_to_their_own_keys_projects_and_owners_rows(alice, bob, db):
    """Server key (api_key/project None), a key in a project, a key in none, and another
    owner, recorded in turns: each bucket and day row holds its own calls only."""
    project = ProjectFactory(owner=alice)
    in_project = ApiKeyFactory(owner=alice, project=project)
    no_project = ApiKeyFactory(owner=alice, project=None)
    bobs = ApiKeyFactory(owner=bob, project=None)
    plan = [
        (alice, None, 1),
        (alice, in_project, 10),
        (alice, no_project, 100),
        (bob, None, 1000),
        (bob, bobs, 10000),
    ]
    for _ in range(3):
        for owner, key, tokens in plan:
            _record(owner, key, tokens)
    for owner, key, tokens in plan:
        buckets = UsageBucket.objects.filter(owner=owner, api_key=key)
        days = UsageDaily.objects.filter(owner=owner, api_key=key)
        assert [(b.input_tokens, b.requests) for b in buckets] == [(3 * tokens, 3)]
        assert [(d.input_tokens, d.requests) for d in days] == [(3 * tokens, 3)]
        assert days.get().project_id == (key.project_id if key else None)


def test_a_call_recorded_again_counts_once_and_a_batch_with_it_too(alice, db):
    first = _record(alice, tokens=7, call_id="call-1")
    assert _record(alice, tokens=7, call_id="call-1") == first
    calls = [
        LlmCall(call_id=cid, provider="openai", model="gpt-x", input_tokens=7, output_tokens=1)
        for cid in ("call-1", "call-2")
    ]
    again = usage_record_llm_calls(
        owner=alice, calls=[LlmCall(**{**c.__dict__, "at": AT}) for c in calls], prices=NO_PRICE
    )
    assert again[0] == first
    assert UsageBucket.objects.get(owner=alice).input_tokens == 14
    assert UsageDaily.objects.get(owner=alice).input_tokens == 14


def test_another_users_key_is_refused_before_anything_is_recorded(alice, bob, db):
    with pytest.raises(ValueError):
        _record(alice, ApiKeyFactory(owner=bob))
    assert not UsageBucket.objects.exists() and not MeteredLlmCall.objects.exists()


# --- 4. A run's end writes _FINISHED_FIELDS only -----------------------------------------


def _stored_as_in_memory(run: AssistantRun) -> None:
    """Every column the run holds in memory is what is stored (a full save's result)."""
    stored = AssistantRun.objects.get(pk=run.pk)
    for field in AssistantRun._meta.concrete_fields:
        assert getattr(stored, field.attname) == getattr(run, field.attname), field.name


@pytest.mark.parametrize("interactive", [False, True])
def test_a_completed_run_stores_all_it_changed(alice, chat, executor, interactive):
    chat.script(tool_calls(("jira_search", {"jql": "x"})), text("Done."))
    outcome = ask_run(user=alice, prompt="hi", executor=executor, interactive=interactive)
    assert outcome.status == "completed"
    _stored_as_in_memory(outcome.run)


def test_a_paused_then_resumed_run_stores_all_it_changed(alice, chat, executor):
    chat.script(tool_calls(("jira_create_issue", {"summary": "Fix"})))
    paused = ask_run(user=alice, prompt="make one", executor=executor, confirm=True)
    assert paused.status == "pending_confirmation"
    _stored_as_in_memory(paused.run)
    chat.script(text("Created."))
    done = ask_confirm(
        user=alice, token=paused.confirmation_token, approved=True, executor=executor
    )
    assert done.status == "completed"
    _stored_as_in_memory(done.run)


# --- 5. /ask's hand-built body -----------------------------------------------------------


def test_the_body_carries_only_the_documented_keys_and_a_token_only_when_given():
    record = {
        "id": "c1",
        "name": "jira_search",
        "arguments": {"jql": "x"},
        "result": 12,
        "durationMs": "7",
        "error": None,
        "secret": "sk-live-123",  # nothing outside the documented keys goes out
        "headers": {"Authorization": "Bearer x"},
    }
    run = AssistantRun(pk=3)
    base = dict(run=run, message="m", prompt="p", response="r", tool_calls=[record])
    completed = ask_body(AskOutcome(status="completed", confirmation_token="t", **base))
    assert "confirmation_token" not in completed and "sk-live" not in str(completed)
    assert (
        completed["data"]
        == AskDataSerializer(
            {"prompt": "p", "response": "r", "toolCalls": [record], "runId": 3}
        ).data
    )
    pending = dict(base, response="")
    action = {"tool": "jira_create_issue", "arguments": {"summary": "s"}, "extra": "x"}
    without = ask_body(AskOutcome(status="pending_confirmation", action=action, **pending))
    assert "confirmation_token" not in without and "extra" not in str(without)
    assert (
        without["data"]
        == PendingDataSerializer({"action": action, "toolCalls": [record], "runId": 3}).data
    )
