"""Statements PostgreSQL prepares server-side, once per connection: the cursor
:mod:`core.prepared` swaps in while it runs one of its compiled statements."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper


@contextmanager
def server_prepared(connection: BaseDatabaseWrapper) -> Iterator[None]:
    """Cursors opened meanwhile bind their values server-side and have PostgreSQL prepare
    the statement (once per connection: psycopg keeps its name), when the connection
    allows prepared statements. A connection is one thread's, so the swap is too."""
    if connection.vendor != "postgresql":
        yield
        return
    # Django's once-per-request health check first: run inside the swap, it could replace
    # the connection (handing the old one back to the pool with the swap still on it).
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw = connection.connection
    if raw is None or raw.prepare_threshold is None:
        yield
        return
    factory = raw.cursor_factory
    raw.cursor_factory = _preparing_cursor_class()
    try:
        yield
    finally:
        raw.cursor_factory = factory


_PREPARING_CURSOR: Any = None


@dataclass(frozen=True)
class _Shown:
    """A prepared statement as Django's query log reads it (``cursor._query.query``)."""

    raw: Any  # the psycopg connection
    sql: str
    values: Any

    @property
    def query(self) -> bytes:
        from django.db.backends.postgresql.psycopg_any import mogrify

        return str(mogrify(self.sql, self.values, self.raw)).encode()


def _preparing_cursor_class() -> Any:
    """Django's server-binding cursor, preparing every statement it runs (psycopg is only
    imported where PostgreSQL is used)."""
    global _PREPARING_CURSOR
    if _PREPARING_CURSOR is None:
        from django.db.backends.postgresql.base import ServerBindingCursor

        class PreparingCursor(ServerBindingCursor):  # type: ignore[misc,valid-type]
            def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
                cursor: Any = super()  # psycopg's Cursor: untyped in Django's stubs
                result = cursor.execute(query, params, **{**kwargs, "prepare": True})
                # What Django's query log reads (psycopg keeps nothing of a prepared run),
                # composed only if read: with its values, as a client-bound one shows.
                self._query = _Shown(getattr(self, "connection"), query, params)  # noqa: B009
                return result

        _PREPARING_CURSOR = PreparingCursor
    return _PREPARING_CURSOR
