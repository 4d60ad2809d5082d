"""Django's PostgreSQL backend, with one addition: a transaction that need not wait for the
disk (``core.durability.transaction_commit_unflushed``) says so in its COMMIT.

``SET LOCAL synchronous_commit TO OFF`` is read when the transaction commits, so it is sent
with the COMMIT, in one simple query, instead of as a statement of its own after BEGIN:
one round trip fewer for each such transaction (the run stored by the web, the run's end in
the worker), and none at all for one that turns out to matter after all
(``transaction_commit_flushed``)."""

from __future__ import annotations

from django.db.backends.postgresql import base
from django.db.backends.utils import debug_transaction
from psycopg.pq import TransactionStatus

COMMIT_UNFLUSHED = "SET LOCAL synchronous_commit TO OFF; COMMIT"


class DatabaseWrapper(base.DatabaseWrapper):
    # Whether the open transaction's COMMIT may return before its WAL is flushed; and
    # whether a SET LOCAL saying so went out as a statement (asked inside a savepoint).
    commit_unflushed = False
    unflushed_sent = False

    def synchronous_commit_for_transaction(self, on: bool) -> None:
        """``synchronous_commit`` for the open transaction. Off at its top level: sent with
        its COMMIT. Inside a savepoint: a ``SET LOCAL`` statement, so rolling the savepoint
        back undoes it, as it undoes what asked for it. On (durable) wins wherever it is
        asked."""
        if on:
            self.commit_unflushed = False
            if not self.unflushed_sent:
                return
        elif not self.savepoint_ids:
            self.commit_unflushed = True
            return
        with self.cursor() as cursor:
            cursor.execute(f"SET LOCAL synchronous_commit TO {'ON' if on else 'OFF'}")
        self.unflushed_sent = self.unflushed_sent or not on

    def _commit(self) -> None:
        unflushed, self.commit_unflushed = self.commit_unflushed, False
        self.unflushed_sent = False
        if (
            not unflushed
            or self.connection is None
            # Nothing was sent (no BEGIN): psycopg's commit sends nothing either.
            or self.connection.info.transaction_status == TransactionStatus.IDLE
        ):
            return super()._commit()  # type: ignore[misc]  # private in the stubs
        with debug_transaction(self, COMMIT_UNFLUSHED), self.wrap_database_errors:
            self.connection.execute(COMMIT_UNFLUSHED)
        return None

    def _rollback(self) -> None:
        self.commit_unflushed = self.unflushed_sent = False
        return super()._rollback()  # type: ignore[misc]  # private in the stubs

    def _close(self) -> None:
        self.commit_unflushed = self.unflushed_sent = False
        return super()._close()  # type: ignore[misc]  # private in the stubs
