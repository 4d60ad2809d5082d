"""Attack review 18: commits that need not wait for the disk (core.durability), the model
requests through the SDK's generic post, the MCP pool's checkout, the events follow.

Four findings, each fixed and kept here as its regression test: a stored key's "used"
audit row committed unflushed before the key went out; a lost run's id reused with its
Redis events; a refreshed token's checkout closing a session still in use; the reaper
closing a session checked out while it reaped. The rest guard what was probed and held."""

from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

import pytest
import redis
from django.db import connection

from assistant import events, mcp_pool
from assistant.llm import ChatClient, LLMKeyRefused, ProviderError
from assistant.models import AssistantRun
from assistant.services import runs
from assistant.services.runs import run_ask_start, run_execute
from tests.fakes.openai_chat import FakeOpenAIChat, error, text
from tests.fakes.server import LocalHTTPServer
from tests.keys.factories import ApiKeyFactory, secret_for

REDIS_URL = os.environ.get("REDIS_URL", "")

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="synchronous_commit is PostgreSQL's"
)


@pytest.fixture
def local_tools(monkeypatch, executor):
    monkeypatch.setattr(runs, "tool_executor", lambda user: executor)
    return executor


# --- 1. The key's use (its audit row) commits without waiting for the disk -------------


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_stored_keys_use_is_audited_by_a_durable_commit(alice, chat, local_tools, settings):
    """run_execute opens the user's stored key (llm_key_for, reveal=True: a KeyAuditEvent
    'used' row, what "last used" shows) inside the claim's transaction, which commits with
    ``synchronous_commit = off``. On the user's own key nothing durable follows before the
    key is sent to the provider (no credit hold), so a PostgreSQL crash (or a failover to
    an async replica) in that moment loses the audit row of a use that did happen."""
    settings.REDIS_URL = ""
    ApiKeyFactory(owner=alice, provider="openai", secret=secret_for("openai", 1))
    chat.script(text("Hello."))
    run_id = run_ask_start(user=alice, prompt="hi").run.pk
    seen: list[str] = []  # synchronous_commit when each audit row's commit happened
    pending = {"audit": False}

    def setting() -> str:
        with connection.connection.cursor() as raw:
            raw.execute("SHOW synchronous_commit")
            return raw.fetchone()[0]

    def wrapper(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if 'INSERT INTO "keys_keyauditevent"' in sql:
            if connection.in_atomic_block:
                pending["audit"] = True  # judged at its transaction's commit
            else:
                seen.append(setting())
        return result

    real_commit = connection.commit

    def commit():
        if pending["audit"]:
            pending["audit"] = False
            seen.append(setting())
        return real_commit()

    connection.commit = commit
    try:
        with connection.execute_wrapper(wrapper):
            assert run_execute(run_id=run_id) == "completed"
    finally:
        del connection.commit
    assert seen, "the stored key was opened without an audit row"
    assert seen == ["on"] * len(seen), seen


# --- 1b. A lost stored run gives its id back: the next run inherits its Redis events ----


@postgres_only
@pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL")
@pytest.mark.django_db
def test_a_new_run_never_starts_with_another_runs_events(alice, bob, chat, local_tools, settings):
    """run_ask_start and the claim commit unflushed. A run on the user's own key that is
    fast (a short answer, read-only tools) publishes its events to Redis — text deltas,
    tool results, its ``done`` body — while nothing durable has flushed it. Lost to a
    crash, its row goes and so does the sequence's advance (nextval's WAL record rides on
    the same unflushed commit), so the next run stored gets the same id, possibly
    someone else's — and its events stream (``after`` 0) replays the lost run's events,
    which live an hour in Redis. Simulated here: the row deleted and the sequence set back
    as crash recovery would leave them."""
    settings.REDIS_URL = REDIS_URL
    ApiKeyFactory(owner=alice, provider="openai", secret=secret_for("openai", 1))
    chat.script(text("Alice's secret: the merger closes on Friday."))
    lost = run_ask_start(user=alice, prompt="what is secret?").run.pk
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(*events._keys(lost))
    try:
        assert run_execute(run_id=lost) == "completed"
        # PostgreSQL crashes before the WAL writer flushed: the run and its id are gone.
        AssistantRun.objects.filter(pk=lost).delete()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('assistant_assistantrun', 'id'), %s, false)",
                [lost],
            )
        chat.script(text("Hello bob."))
        bobs = run_ask_start(user=bob, prompt="hello").run.pk
        assert bobs == lost  # the id came back

        async def follow() -> list[dict]:
            seen: list[dict] = []
            try:
                async with asyncio.timeout(1.0):
                    async for event in events.run_events_follow(run_id=bobs, after=0):
                        seen.append(event)
            except TimeoutError:
                pass
            return seen

        inherited = asyncio.run(follow())
        assert not [e for e in inherited if "merger" in str(e["data"])], inherited
        assert events.run_events_last_seq(run_id=bobs) == 0
    finally:
        client.delete(*events._keys(lost))


# --- 1c. Where the claim flush is (guards) ----------------------------------------------


@postgres_only
@pytest.mark.django_db
def test_a_resumed_approval_flushes_its_claim_before_the_write(alice, chat, local_tools):
    """Confirm mode: the approved write runs through the publishing executor after its
    tools are listed, so the claim is flushed before it."""
    from django.test.utils import CaptureQueriesContext

    from assistant.services.runs import run_confirm_start
    from tests.fakes.openai_chat import tool_calls

    flush = 'SET "started_at" = "assistant_assistantrun"."started_at"'
    at_tool: list[int] = []
    chat.script(tool_calls(("jira_create_issue", {"project_key": "KAN", "summary": "Bug"})))
    started = run_ask_start(user=alice, prompt="file a bug", confirm=True)
    assert run_execute(run_id=started.run.pk) == "pending_confirmation"
    chat.script(text("Done."))
    resumed = run_confirm_start(user=alice, token=started.confirmation_token, approved=True)

    def answer(arguments):
        from tests.assistant.chat import LocalResult

        at_tool.append(len(captured.captured_queries))
        return LocalResult('{"key": "KAN-2"}')

    local_tools.answers["jira_create_issue"] = answer
    with CaptureQueriesContext(connection) as captured:
        assert run_execute(run_id=resumed.run.pk) == "completed"
    queries = [q["sql"] for q in captured.captured_queries]
    flushes = [n for n, sql in enumerate(queries) if flush in sql]
    assert at_tool and flushes and flushes[0] < at_tool[0]


# --- 2. Model requests through the SDK's generic post -----------------------------------


def _client(chat: FakeOpenAIChat, key: str = "sk-user-0123456789") -> ChatClient:
    return ChatClient(api_key=key, base_url=chat.base_url)


def test_a_redirect_is_refused_and_the_key_never_follows_it(chat):
    other = FakeOpenAIChat().start()
    try:
        chat.script(
            error(307, headers={"Location": f"{other.base_url}/chat/completions"}),
        )
        client = _client(chat)
        with pytest.raises(ProviderError) as raised:
            client.complete(model="m", messages=[{"role": "user", "content": "hi"}], tools=[])
        client.close()
        assert not other.requests
        assert "sk-user" not in str(raised.value.as_dict())
        assert "fake vendor" not in str(raised.value.as_dict())
    finally:
        other.stop()


def test_the_key_goes_to_the_configured_base_url_only_and_errors_hide_vendor_text(chat):
    chat.script(error(401), text("ok"))
    client = _client(chat)
    with pytest.raises(LLMKeyRefused) as raised:
        client.complete(model="m", messages=[{"role": "user", "content": "hi"}], tools=[])
    assert "fake vendor" not in raised.value.message
    answer = client.complete(model="m", messages=[{"role": "user", "content": "hi"}], tools=[])
    client.close()
    assert answer.content == "ok"
    assert all(r.path.endswith("/chat/completions") for r in chat.requests)
    assert {r.authorization for r in chat.requests} == {"Bearer sk-user-0123456789"}


# --- 4. The MCP pool: a refreshed token retires the user's sessions, busy or not --------


@dataclass(frozen=True)
class _NoServer:
    """A transport that never connects (the session fails to start at once)."""

    def open(self, *, access_token: str, cloud_id: str, timeout: float):
        @asynccontextmanager
        async def refused():
            raise OSError("no server here")
            yield  # pragma: no cover

        return refused()


def test_a_refreshed_token_never_closes_a_session_still_in_use():
    """Two runs of one user: run A holds its access (the old token) for up to a minute and
    is mid-call on its session; run B's access was refreshed, so B's checkout retires the
    user's sessions on other tokens — A's busy one included, cutting its call (a write
    then fails as 'may have been done'). A's next call, still on the old token, retires
    B's in turn. The reaper and the cap spare busy sessions; this path does not."""

    async def scenario() -> bool:
        pool = mcp_pool.Pool()
        transport = _NoServer()
        old_key = (1, "old-token-digest", transport)
        new_key = (1, "new-token-digest", transport)
        in_use = mcp_pool.Session(old_key)
        in_use.busy = 1  # run A's tool call is running on it
        pool.sessions[old_key] = in_use
        fresh = await pool._checkout(new_key, access_token="new", cloud_id="c", timeout=1)
        fresh.busy -= 1
        closed = in_use.closed
        await pool.close_all()
        return closed

    assert asyncio.run(scenario()) is False


def test_another_users_key_never_shares_or_retires_a_session():
    """Keys are per user id and token: bob's checkout neither reuses nor closes alice's."""

    async def scenario() -> tuple[bool, bool]:
        pool = mcp_pool.Pool()
        transport = _NoServer()
        alice = (1, "alice-digest", transport)
        bob = (2, "bob-digest", transport)
        alices = mcp_pool.Session(alice)
        pool.sessions[alice] = alices
        bobs = await pool._checkout(bob, access_token="b", cloud_id="c", timeout=1)
        bobs.busy -= 1
        result = (bobs is alices, alices.closed)
        await pool.close_all()
        return result

    assert asyncio.run(scenario()) == (False, False)


def test_the_reaper_never_closes_a_session_checked_out_while_it_reaps(settings):
    """``_Pool.reap`` picks the idle, stale sessions up front and closes them one by one,
    each close awaiting its owner task (a stdio server's exit takes a while). A call that
    checks out the second stale session during the first one's close gets it (busy), and
    the reaper then closes it under the call."""
    settings.MCP_IDLE_TIMEOUT = 1

    async def scenario() -> bool:
        pool = mcp_pool.Pool()
        transport = _NoServer()
        slow_key, used_key = (1, "a", transport), (2, "b", transport)
        slow, used = mcp_pool.Session(slow_key), mcp_pool.Session(used_key)
        for session in (slow, used):
            session.last_used = 0.0  # idle for ages
            pool.sessions[session.key] = session

        async def owner_task() -> None:  # leaves a moment after it is told to stop
            await slow._stop.wait()
            await asyncio.sleep(0.3)

        slow._task = asyncio.ensure_future(owner_task())
        reaping = asyncio.ensure_future(pool.reap())
        await asyncio.sleep(0.05)  # the reaper waits for the first session's close
        got = await pool._checkout(used_key, access_token="t", cloud_id="c", timeout=1)
        assert got is used and used.busy == 1  # a caller now uses it
        await reaping
        closed_under_caller = used.closed
        used.busy -= 1
        await pool.close_all()
        return closed_under_caller

    assert asyncio.run(scenario()) is False


# --- 2b. Garbage and error events in a 200 stream ---------------------------------------


class _RawStream(LocalHTTPServer):
    """Answers every POST with 200 and the given SSE body."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.authorizations: list[str] = []
        super().__init__()

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                fake.authorizations.append(self.headers.get("Authorization", ""))
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self.wfile.write(fake.body)

            def log_message(self, format, *args):  # noqa: A002
                pass

        return Handler


@pytest.mark.parametrize(
    "body",
    [
        b"data: {not json\n\n",
        b'data: {"error": {"message": "vendor says sk-user-0123456789 is bad"}}\n\n',
        b'data: {"id": "x", "choices": "garbage", "model": "m"}\n\n',
        b'data: {"id": "x", "choices": [null], "model": "m"}\n\n',
        b'data: {"id": "x", "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": '
        b'[{"index": null, "function": {"name": 5}}, {"index": 0}]}}]}\n\ndata: [DONE]\n\n',
    ],
)
def test_a_garbage_stream_is_a_provider_error_without_vendor_text(settings, body):
    settings.OPENAI_MAX_RETRIES = 0
    settings.OPENAI_TIMEOUT = 5
    server = _RawStream(body).start()
    try:
        client = ChatClient(api_key="sk-user-0123456789", base_url=server.base_url)
        with pytest.raises(ProviderError) as raised:
            client.complete(model="m", messages=[{"role": "user", "content": "hi"}], tools=[])
        client.close()
        shown = str(raised.value.as_dict())
        assert "sk-user" not in shown and "vendor says" not in shown
        assert server.authorizations == ["Bearer sk-user-0123456789"]
    finally:
        server.stop()
