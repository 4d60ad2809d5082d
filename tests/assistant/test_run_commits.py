"""How a run's transactions commit (``run_ask_start``, ``run_execute``): which need not
wait for the disk (the stored run, the claim, the end), which must (credit holds and
charges, a claim that opens the user's stored key), the claim made durable before the
first write, and the run read locked until claimed. Statements listed on failure."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from assistant.services import runs
from assistant.services.runs import run_ask_start, run_execute
from core.db.postgresql.base import COMMIT_UNFLUSHED
from tests.assistant.chat import LocalResult
from tests.assistant.run_sql import SEARCH, _listing, _run
from tests.fakes.openai_chat import text, tool_calls
from tests.keys.factories import ApiKeyFactory, secret_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def local_tools(monkeypatch, executor, settings):
    settings.REDIS_URL = ""  # events are rows here: their statements count too
    monkeypatch.setattr(runs, "tool_executor", lambda user: executor)


postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="synchronous_commit is PostgreSQL's"
)
COMMITS = ("COMMIT", COMMIT_UNFLUSHED)


def _commit_after(queries: list[str], n: int) -> str:
    """How the transaction holding statement ``n`` committed."""
    return next(sql for sql in queries[n:] if sql in COMMITS)


def _first(queries: list[str], needle: str) -> int:
    return next(n for n, sql in enumerate(queries) if needle in sql)


@postgres_only
@pytest.mark.django_db(transaction=True)  # its commits are real, and logged
def test_storing_a_run_commits_without_waiting_for_the_disk(alice, chat):
    """The run stored for a worker: lost to a PostgreSQL crash, it was never claimed (the
    claim is durable, and flushes it), so nothing of it ran."""
    with CaptureQueriesContext(connection) as captured:
        run_ask_start(user=alice, prompt="List KAN")
    queries = [query["sql"] for query in captured.captured_queries]
    stored = _first(queries, 'INSERT INTO "assistant_assistantrun"')
    assert _commit_after(queries, stored) == COMMIT_UNFLUSHED, _listing(queries)
    assert "SET LOCAL synchronous_commit TO OFF" not in queries  # no statement of its own


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_on_credits_the_holds_and_charges_wait_for_the_disk_the_claim_and_end_do_not(alice, chat):
    """The claim and the end (the run's answer saved) commit without waiting for the disk;
    the run's one hold (before its first call) and its calls' charges (after its end)
    commit durably, and no billing statement is part of the end's transaction."""
    _run(alice, chat, text("Hello."))  # the hour's usage rows and the price cache exist
    queries = _run(alice, chat, tool_calls(("jira_search", SEARCH)), text("KAN has one."))
    claim, end = _first(queries, "'running'"), _first(queries, "'completed'")
    assert _commit_after(queries, claim) == COMMIT_UNFLUSHED, _listing(queries)
    assert _commit_after(queries, end) == COMMIT_UNFLUSHED, _listing(queries)
    holds = [n for n, sql in enumerate(queries) if 'INSERT INTO "billing_credithold"' in sql]
    charges = [n for n, sql in enumerate(queries) if 'INTO "billing_creditledgerentry"' in sql]
    # Two calls: one hold covers both, a charge each once the answer is saved.
    assert len(holds) == 1 and holds[0] < end, _listing(queries)
    assert len(charges) == 2 and min(charges) > end, _listing(queries)
    assert all(_commit_after(queries, n) == "COMMIT" for n in holds + charges), _listing(queries)
    began = max(n for n, sql in enumerate(queries[:end]) if sql in COMMITS)
    # Only its hold lowered to what its calls cost (a follow-up finds the rest available):
    # no money moves, and lost to a crash the whole hold stays set aside until the charge.
    billing = [sql for sql in queries[began:end] if '"billing_' in sql]
    assert len(billing) == 1, _listing(queries)
    assert billing[0].startswith('UPDATE "billing_credithold" SET "amount_micros" = ')


FLUSH = 'SET "started_at" = "assistant_assistantrun"."started_at"'


def _run_counting_at_tool(user, chat, executor, tool, arguments):
    """The run's statements, and how many had gone out when ``tool`` ran."""
    seen: list[int] = []

    def answer(arguments):
        seen.append(len(captured.captured_queries))
        return LocalResult('{"ok": true}')

    executor.answers[tool] = answer
    chat.script(tool_calls((tool, arguments)), text("Done."))
    run_id = run_ask_start(user=user, prompt="Go").run.pk
    with CaptureQueriesContext(connection) as captured:
        assert run_execute(run_id=run_id) == "completed"
    return [query["sql"] for query in captured.captured_queries], seen[0]


@postgres_only
def test_before_its_first_write_a_run_makes_its_claim_durable(alice, chat, executor):
    """Lost to a crash, an unflushed claim reads as "never started, nothing was done":
    true only until a write runs, so the claim is flushed (a durable commit) before it."""
    queries, at_tool = _run_counting_at_tool(
        alice, chat, executor, "jira_create_issue", {"project_key": "KAN", "summary": "Bug"}
    )
    flushes = [n for n, sql in enumerate(queries) if FLUSH in sql]
    assert len(flushes) == 1 and flushes[0] < at_tool, _listing(queries)


@postgres_only
def test_a_run_that_only_reads_never_waits_for_the_disk_for_its_claim(alice, chat, executor):
    queries, _ = _run_counting_at_tool(alice, chat, executor, "jira_search", SEARCH)
    assert not [sql for sql in queries if FLUSH in sql], _listing(queries)


@postgres_only
def test_on_the_users_own_key_the_claim_and_the_keys_use_commit_durably_at_once(alice, chat):
    """The web found a stored key: the claim's transaction (with the key's "used" audit
    row) waits for the disk from the start, with no SET LOCAL either way, and the run's
    first write needs no flush after it."""
    from keys.models import KeyAuditEvent

    ApiKeyFactory(owner=alice, provider="openai", secret=secret_for("openai", 1))
    queries = _run(alice, chat, tool_calls(("jira_create_issue", {"summary": "x"})), text("Ok."))
    claim = next(n for n, sql in enumerate(queries) if "'running'" in sql)
    audit = next(n for n, sql in enumerate(queries) if '"keys_keyauditevent"' in sql)
    end = next(n for n, sql in enumerate(queries) if "'completed'" in sql)
    assert claim < audit < end, _listing(queries)
    claim_transaction = queries[: audit + 2]
    assert not [sql for sql in claim_transaction if "synchronous_commit" in sql], _listing(queries)
    assert not [sql for sql in queries if FLUSH in sql], _listing(queries)
    assert KeyAuditEvent.objects.filter(action="used").count() == 1


@postgres_only
def test_a_worker_reads_its_run_locked_until_it_has_claimed_it(alice, chat):
    """A copy read before the claim could be of an earlier part of the run (resumed by an
    approval in between): the run is read FOR UPDATE in the claim's transaction."""
    queries = _run(alice, chat, text("Hello."))
    read = next(n for n, sql in enumerate(queries) if 'FROM "assistant_assistantrun"' in sql)
    claim = next(n for n, sql in enumerate(queries) if "'running'" in sql)
    assert "FOR UPDATE" in queries[read] and read < claim, _listing(queries)
