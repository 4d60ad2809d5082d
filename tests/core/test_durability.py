"""Commits that need not wait for the disk: PostgreSQL's ``synchronous_commit`` off for
one transaction only, and nothing at all on another database or outside a transaction."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from core.durability import transaction_commit_flushed, transaction_commit_unflushed

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="synchronous_commit is PostgreSQL's"
)


def _synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return str(cursor.fetchone()[0])


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_only_the_transaction_that_asks_commits_without_waiting_for_the_disk():
    with transaction.atomic():
        assert _synchronous_commit() == "on"
        transaction_commit_unflushed()
        assert _synchronous_commit() == "off"
    assert _synchronous_commit() == "on"  # the next transaction waits again
    with transaction.atomic():
        assert _synchronous_commit() == "on"


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_it_changes_nothing():
    with CaptureQueriesContext(connection) as captured:
        transaction_commit_unflushed()
    assert captured.captured_queries == []
    assert _synchronous_commit() == "on"


@pytest.mark.skipif(connection.vendor == "postgresql", reason="the other databases")
@pytest.mark.django_db
def test_another_database_is_sent_nothing():
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        transaction_commit_unflushed()
    assert captured.captured_queries == []


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_transaction_that_turns_out_to_matter_waits_for_the_disk_again():
    with transaction.atomic():
        transaction_commit_unflushed()
        transaction_commit_flushed()
        assert _synchronous_commit() == "on"
