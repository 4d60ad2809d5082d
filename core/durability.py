"""Commits that need not wait for the disk.

A durable commit on PostgreSQL waits for its WAL to reach the disk: about 4 ms here, more
than every other statement of an /ask run together. Some writes only say where work
stands (an assistant run stored for a worker, or its end recorded once the tools have
run): if PostgreSQL itself crashed in the moment after them, losing them would leave a
state the reaper reads correctly. For those, :func:`transaction_commit_unflushed` lets
the commit return before the flush (PostgreSQL's ``synchronous_commit = off`` for that
transaction only). It changes nothing about visibility (other sessions see the rows at
once) nor about atomicity: after such a crash the transaction is gone as a whole, and
any later durable commit flushes it first. Money (credit holds, charges) never uses it.
"""

from __future__ import annotations

from django.db import transaction


def transaction_commit_unflushed(*, using: str | None = None) -> None:
    """Let the current transaction's commit return before its WAL is flushed (the next
    durable commit, or PostgreSQL's WAL writer within ~0.6 s, flushes it). Call inside
    ``transaction.atomic()``; outside one, or on another database, it does nothing."""
    _synchronous_commit("OFF", using=using)


def transaction_commit_flushed(*, using: str | None = None) -> None:
    """Undo :func:`transaction_commit_unflushed` for the current transaction: it turned out
    to hold a write that must survive a crash (the commit waits for the disk again)."""
    _synchronous_commit("ON", using=using)


def _synchronous_commit(value: str, *, using: str | None) -> None:
    connection = transaction.get_connection(using)
    if connection.vendor != "postgresql" or not connection.in_atomic_block:
        return
    ask = getattr(connection, "synchronous_commit_for_transaction", None)
    if ask is not None:  # Kay's backend (core.db.postgresql): said with the COMMIT
        ask(value == "ON")
        return
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL synchronous_commit TO {value}")
