"""Attack review 21: prepared statements on PostgreSQL, the run's event writer (Redis replies
read late), the MCP tools-as-offered cache, and the shared Redis cache client.

Each test guards a risk the review probed; the three it found (a health-check PING reading an
event's answer, a connection Redis closed between events, the tools cache swept while
another run added to it) failed here before their fixes."""

import json
import os
import secrets
import threading

import pytest
from django.db import connection, transaction

from assistant import events, mcp_client
from assistant.events import DONE, RunEventWriter
from core.prepared import PreparedQuery, PreparedUpdate, first_row
from keys.models import ApiKey
from tests.keys.factories import ApiKeyFactory

REDIS_URL = os.environ.get("REDIS_URL", "")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL")
needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL prepares statements"
)


# --- 2. RunEventWriter -------------------------------------------------------------------


class _Clock:
    """redis-py's clock (``redis.connection.time``), each reading a minute after the last:
    as if a minute passed between a run's events (a model thinking, a slow tool)."""

    def __init__(self, real):
        self._real = real
        self._now = real.monotonic()

    def monotonic(self):
        self._now += 60
        return self._now

    def __getattr__(self, name):
        return getattr(self._real, name)


def _url_with(**options) -> str:
    query = "&".join(f"{name}={value}" for name, value in options.items())
    return f"{REDIS_URL}{'&' if '?' in REDIS_URL else '?'}{query}"


@needs_redis
@pytest.mark.parametrize(
    "options",
    [
        # A keep-alive PING before a command on a connection idle for 30 s (a common
        # setting behind load balancers and managed Redis that drop idle connections).
        {"health_check_interval": 30},
        # The same with redis-py retrying a failed command once: the PING's failure is
        # retried on a new socket, and the answers still owed never come.
        {"health_check_interval": 30, "retry_on_timeout": "true", "socket_timeout": 2},
    ],
    ids=["health-check", "health-check-and-retry"],
)
def test_a_run_whose_events_span_a_health_check_interval_publishes_them_all(
    settings, monkeypatch, options
):
    """Found by the review: redis-py checks a connection's
    health (PING, then reads one answer) before
    a command once ``health_check_interval`` passed since the last answer it read. The
    writer reads none until done, so the PING reads the answer of an earlier event:
    "Bad response from PING health check" — the run fails at its second event — or,
    retried, the writer waits for answers owed on the dropped socket (forever without a
    socket timeout; a thread pool worker has no time limit to end it)."""
    import redis.connection

    settings.REDIS_URL = _url_with(**options)
    monkeypatch.setattr(events, "_client", None)  # a client for this URL
    monkeypatch.setattr(redis.connection, "time", _Clock(redis.connection.time))
    run_id = secrets.randbelow(10**12) + 3 * 10**12
    writer = RunEventWriter(run_id)
    try:
        writer.publish("tool_start", {"name": "jira_search"})
        writer.publish("text", {"delta": "Here"})
        writer.publish(DONE, {"status": "completed"})
    finally:
        writer.close()
        stored = [
            json.loads(raw)["kind"]
            for raw in events._redis().lrange(events._keys(run_id)[0], 0, -1)
        ]
        events._redis().delete(events._keys(run_id)[0])
        events._redis().close()
        events._redis().connection_pool.disconnect()
    assert stored == ["tool_start", "text", DONE]


def _stored_kinds(run_id: int) -> list[str]:
    return [
        json.loads(raw)["kind"] for raw in events._redis().lrange(events._keys(run_id)[0], 0, -1)
    ]


@needs_redis
def test_a_connection_redis_closed_between_events_loses_neither_events_nor_done(settings):
    """Found by the review: the writer kept one connection for the whole run and never
    checked it again.
    Redis closing it between two events (a restart or failover, its idle ``timeout``, a
    proxy's idle limit; a model thinking or a tool call can take minutes) loses the next
    event silently (written into the dead socket) and fails the one after, ``done``
    included: the run fails, or its ``done`` never reaches /ask, which then waits its
    whole ASK_SYNC_TIMEOUT. ``run_event_publish`` took a connection per event, checked
    by the pool (a closed one replaced), and lost nothing."""
    import time

    settings.REDIS_URL = REDIS_URL
    run_id = secrets.randbelow(10**12) + 4 * 10**12
    writer = RunEventWriter(run_id)
    try:
        writer.publish("tool_start", {"name": "jira_search"})
        host, port = writer._connection._sock.getsockname()[:2]
        events._redis().client_kill(f"{host}:{port}")  # as a Redis restart would
        time.sleep(0.05)
        writer.publish("text", {"delta": "Here"})
        writer.publish(DONE, {"status": "completed"})
    finally:
        writer.close()
        stored = _stored_kinds(run_id)
        events._redis().delete(events._keys(run_id)[0])
    assert stored == ["tool_start", "text", DONE]


@needs_redis
def test_a_time_limit_raised_while_done_is_flushed_never_hands_answers_on(settings, monkeypatch):
    """Regression: a BaseException (Celery's soft time limit, raised by a signal anywhere)
    inside the reading of the answers drops the connection: the next command on the pool
    reads its own answer, never an event's."""
    from billiard.exceptions import SoftTimeLimitExceeded

    settings.REDIS_URL = REDIS_URL
    run_id = secrets.randbelow(10**12) + 5 * 10**12
    writer = RunEventWriter(run_id)
    try:
        writer.publish("text", {"delta": "a"})
        writer.publish("text", {"delta": "b"})
        connection_ = writer._connection
        real = connection_.read_response
        calls = []

        def interrupted(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:  # one answer read, the limit strikes before the next
                raise SoftTimeLimitExceeded()
            return real(*args, **kwargs)

        monkeypatch.setattr(connection_, "read_response", interrupted)
        with pytest.raises(SoftTimeLimitExceeded):
            writer.publish(DONE, {"status": "completed"})
        writer.close()
        writer.close()  # twice: nothing more
        assert connection_._sock is None
        pool = events._redis().connection_pool
        assert connection_ not in pool._in_use_connections
        for _ in range(len(pool._available_connections) + 1):
            assert events._redis().echo("mine") == b"mine"
    finally:
        events._redis().delete(events._keys(run_id)[0])


# --- 3. The MCP tools as offered -----------------------------------------------------------


class _FakeSession:
    """Stands for a pooled session that left the pool: its entry is stale."""

    def __init__(self, key):
        self.key = key
        self.closed = True
        self.retired = False


def _tool(name: str):
    from mcp.types import Tool

    return Tool(name=name, description=name, inputSchema={"type": "object", "properties": {}})


def test_tools_listed_by_two_runs_at_once_never_break_one_of_them(settings, monkeypatch):
    """Found by the review: ``mcp_tools_for`` swept ``_OFFERED`` (iterating it, calling
    ``still_for``
    on each entry: Python code, so the GIL can pass to another thread mid-sweep) while
    another run's thread — the worker runs ``--pool=threads`` — stores its own listing
    in it: "dictionary changed size during iteration", and that run fails (a 500).
    Shown deterministically: the other thread lists its tools exactly while this one
    is sweeping."""
    settings.MCP_JIRA_ENABLED = True
    settings.MCP_JIRA_DISABLED_TOOLS = []
    offered: dict = {}
    monkeypatch.setattr(mcp_client, "_OFFERED", offered)

    async def listed(key, access_token, cloud_id, timeout):
        return _FakeSession(key), [_tool("jira_search")]

    monkeypatch.setattr(mcp_client, "_tools", listed)

    errors: list[BaseException] = []

    def other_run():
        try:
            mcp_client.mcp_tools_for(user_id=2, access_token="bob-token", cloud_id="c")
        except BaseException as exc:
            errors.append(exc)

    class _Interleaving:
        """A stale entry whose check is where the GIL passes to the other run."""

        session = _FakeSession(("nobody",))
        switched = False

        def still_for(self, pool, disabled):
            if not _Interleaving.switched:
                _Interleaving.switched = True
                thread = threading.Thread(target=other_run)
                thread.start()
                thread.join()
            return False

    offered[(99, "old-token", None)] = _Interleaving()
    tools = mcp_client.mcp_tools_for(user_id=1, access_token="alice-token", cloud_id="c")
    assert [tool.name for tool in tools] == ["jira_search"]
    assert not errors


def test_a_cached_listing_is_never_another_users_nor_offers_a_tool_disabled_since(
    settings, monkeypatch
):
    """Regression: keys carry the user and token; the disabled set is compared on read."""
    from assistant.mcp_pool import pool_runner

    settings.MCP_JIRA_ENABLED = True
    settings.MCP_JIRA_DISABLED_TOOLS = []
    monkeypatch.setattr(mcp_client, "_OFFERED", {})
    pool = pool_runner().pool
    listings: list[tuple] = []

    class _Live:
        def __init__(self, key):
            self.key, self.closed, self.retired = key, False, False

    async def listed(key, access_token, cloud_id, timeout):
        listings.append(key)
        session = _Live(key)
        pool.sessions[key] = session  # as if the pool held it
        names = ["jira_search", f"only_for_{key[0]}", "jira_delete_issue"]
        return session, [_tool(name) for name in names]

    monkeypatch.setattr(mcp_client, "_tools", listed)
    try:
        alice = mcp_client.mcp_tools_for(user_id=1, access_token="alice-token", cloud_id="c")
        bob = mcp_client.mcp_tools_for(user_id=2, access_token="bob-token", cloud_id="c")
        assert "only_for_1" in {t.name for t in alice} and "only_for_2" in {t.name for t in bob}
        assert "only_for_1" not in {t.name for t in bob}
        again = mcp_client.mcp_tools_for(user_id=1, access_token="alice-token", cloud_id="c")
        assert [t.name for t in again] == [t.name for t in alice] and len(listings) == 2
        settings.MCP_JIRA_DISABLED_TOOLS = ["Jira_Delete_Issue"]
        names = {
            t.name
            for t in mcp_client.mcp_tools_for(user_id=1, access_token="alice-token", cloud_id="c")
        }
        assert "jira_delete_issue" not in names and len(listings) == 3
        called = mcp_client.mcp_tool_call(
            user_id=1,
            access_token="alice-token",
            cloud_id="c",
            name="jira_delete_issue",
            arguments={},
        )
        assert called.is_error and "disabled" in called.text
    finally:
        for key in listings:
            pool.sessions.pop(key, None)


# --- 1. Prepared statements --------------------------------------------------------------


_RENAME = PreparedUpdate(lambda pk, name: (ApiKey.objects.filter(pk=pk), {"name": name}))
_KEY = PreparedQuery(lambda pk: first_row(ApiKey.objects.filter(pk=pk)))


def _prepared_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return {row[0] for row in cursor.fetchall()}


@needs_postgresql
def test_a_statement_failing_midway_leaves_later_queries_client_bound(alice, db):
    """Regression: the preparing cursor is the connection's only for its statement, also
    when that statement fails (a name too long for its column)."""
    key = ApiKeyFactory(owner=alice, provider="openai")
    _RENAME.run(pk=key.pk, name="short")
    connection.ensure_connection()
    factory = connection.connection.cursor_factory
    with pytest.raises(Exception), transaction.atomic():
        _RENAME.run(pk=key.pk, name="x" * 10_000)
    assert connection.connection.cursor_factory is factory
    before = _prepared_names()
    list(ApiKey.objects.filter(owner=alice, name__startswith="sh"))
    assert _prepared_names() == before  # Django's own query was not prepared


@needs_postgresql
@pytest.mark.parametrize("pk", [2**31, 2**63 - 1, 2**63, 10**20, -(10**20)])
def test_an_id_out_of_any_columns_range_finds_nothing_rather_than_failing(alice, db, pk):
    """Regression: psycopg sends a large int as int8 or numeric; PostgreSQL compares it
    with the bigint key (a prepared statement per parameter type), no error."""
    ApiKeyFactory(owner=alice, provider="openai")
    assert _KEY.first(pk=ApiKey.objects.get().pk) is not None
    assert _KEY.first(pk=pk) is None


@needs_postgresql
def test_the_query_log_shows_a_prepared_statement_with_its_values_as_django_would(alice, db):
    """Regression: the debug log reads the statement as a client-bound one shows it (no
    more, no less: the values are the ORM's own log's)."""
    from django.test.utils import CaptureQueriesContext

    key = ApiKeyFactory(owner=alice, provider="openai")
    _KEY.first(pk=key.pk)
    with CaptureQueriesContext(connection) as queries:
        _KEY.first(pk=key.pk)
    (query,) = queries.captured_queries
    assert f'"id" = {key.pk}' in query["sql"] and "$1" not in query["sql"]


# --- 4. The shared Redis cache client ------------------------------------------------------


@needs_redis
def test_a_forked_process_uses_the_shared_client_on_connections_of_its_own():
    """Regression: one client per pool lives for the process; a process forked after it
    exists (Celery prefork, gunicorn) gets its own connections (redis-py's pool checks its
    pid), so parent and child never read each other's answers."""
    from django.core.cache import cache

    cache.set("review21-fork", "parent", 30)
    assert cache.get("review21-fork") == "parent"  # the parent's connection exists
    pool = cache._cache._get_connection_pool(write=True)
    parent_connections = set(map(id, pool._available_connections))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only the cache, then out without running any cleanup
        try:
            os.close(read)
            cache.set("review21-fork-child", "child", 30)
            got = [cache.get("review21-fork"), cache.get("review21-fork-child")]
            mine = set(map(id, pool._available_connections))
            got.append(not (mine & parent_connections) and pool.pid == os.getpid())
            os.write(write, json.dumps(got).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = json.loads(pipe.read() or "null")
    os.waitpid(pid, 0)
    assert answer == ["parent", "child", True]
    assert cache.get("review21-fork") == "parent" and cache.get("review21-fork-child") == "child"


@needs_redis
def test_done_lost_with_its_connection_is_sent_again_over_a_fresh_one(settings, monkeypatch):
    """The waiting request must hear how the run ended even when the writer's connection
    breaks just as ``done`` goes out."""
    settings.REDIS_URL = REDIS_URL
    run_id = secrets.randbelow(10**12) + 5 * 10**12
    writer = RunEventWriter(run_id)
    try:
        writer.publish("text", {"delta": "Here"})
        connection = writer._connection
        real = connection.send_command

        broke: list[bool] = []

        def broken(*args, **kwargs):
            if '"done"' in str(args) and not broke:  # once: this socket's last write
                broke.append(True)
                raise events.redis.ConnectionError("Connection reset by peer")
            return real(*args, **kwargs)

        monkeypatch.setattr(connection, "send_command", broken)
        writer.publish(DONE, {"status": "completed"})
        assert broke and writer._connection is None  # the broken one was dropped
    finally:
        writer.close()
        stored = _stored_kinds(run_id)
        events._redis().delete(events._keys(run_id)[0])
    assert stored[-1] == DONE
