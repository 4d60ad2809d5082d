"""Commits that need not wait for the disk: PostgreSQL's ``synchronous_commit`` off for
one transaction only — said with its COMMIT (core.db.postgresql), which PostgreSQL reads
then: "the behavior for any one transaction is determined by the setting in effect when
it commits" — and nothing at all on another database or outside a transaction."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from core.db.postgresql.base import COMMIT_UNFLUSHED
from core.durability import transaction_commit_flushed, transaction_commit_unflushed
from keys.models import Project

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="synchronous_commit is PostgreSQL's"
)


def _commits(captured) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if "COMMIT" in q["sql"]]


def _synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return str(cursor.fetchone()[0])


def _write(owner, name: str) -> None:
    Project.objects.create(owner=owner, name=name)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_only_the_transaction_that_asks_commits_without_waiting_for_the_disk(alice):
    with CaptureQueriesContext(connection) as captured:
        with transaction.atomic():
            transaction_commit_unflushed()
            _write(alice, "unflushed")
        with transaction.atomic():  # the next transaction waits again
            _write(alice, "flushed")
    assert _commits(captured) == [COMMIT_UNFLUSHED, "COMMIT"]
    # Committed, both, and the connection is back to autocommit and usable.
    assert set(Project.objects.filter(owner=alice).values_list("name", flat=True)) == {
        "unflushed",
        "flushed",
    }
    assert _synchronous_commit() == "on"  # SET LOCAL ended with its transaction


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_it_costs_no_statement_of_its_own(alice):
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        transaction_commit_unflushed()
        _write(alice, "one")
    # BEGIN, the INSERT and the COMMIT that says it: no statement of its own.
    assert [q["sql"].split()[0] for q in captured.captured_queries] == ["BEGIN", "INSERT", "SET"]
    # A transaction that sent nothing sends no COMMIT (Django logs one; psycopg sends none).
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        transaction_commit_unflushed()
    assert COMMIT_UNFLUSHED not in _commits(captured)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_it_changes_nothing(alice):
    with CaptureQueriesContext(connection) as captured:
        transaction_commit_unflushed()
        _write(alice, "autocommit")
    assert not any("synchronous_commit" in q["sql"] for q in captured.captured_queries)


@pytest.mark.skipif(connection.vendor == "postgresql", reason="the other databases")
@pytest.mark.django_db
def test_another_database_is_sent_nothing():
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        transaction_commit_unflushed()
    assert captured.captured_queries == []


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_transaction_that_turns_out_to_matter_waits_for_the_disk_again(alice):
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        transaction_commit_unflushed()
        _write(alice, "matters")
        transaction_commit_flushed()
    assert _commits(captured) == ["COMMIT"]


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_leaves_nothing_for_the_next(alice):
    with pytest.raises(RuntimeError), transaction.atomic():
        transaction_commit_unflushed()
        _write(alice, "rolled back")
        raise RuntimeError("undo")
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        _write(alice, "next")
    assert _commits(captured) == ["COMMIT"]
    assert list(Project.objects.filter(owner=alice).values_list("name", flat=True)) == ["next"]


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_asked_inside_a_savepoint_it_is_undone_with_it(alice):
    """A savepoint rolled back takes back what asked inside it: the commit waits for the
    disk again. (Asked at the top, it goes with the COMMIT; inside a savepoint, as the
    statement it was, which PostgreSQL undoes with the savepoint.)"""
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        _write(alice, "kept")
        with pytest.raises(RuntimeError), transaction.atomic():
            transaction_commit_unflushed()
            raise RuntimeError("undo")
        assert _synchronous_commit() == "on"
    assert _commits(captured) == ["COMMIT"]


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_durable_asked_inside_a_savepoint_wins(alice):
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        transaction_commit_unflushed()
        _write(alice, "matters")
        with transaction.atomic():
            transaction_commit_flushed()
    assert _commits(captured) == ["COMMIT"]
