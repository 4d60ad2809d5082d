"""Closing a response in a test as Django's test client does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.signals import request_finished
from django.db import close_old_connections


@contextmanager
def connections_kept_on_close() -> Iterator[None]:
    """``response.close()`` inside fires ``request_finished`` without it closing the
    database connections: the test's own transaction (PostgreSQL) stays usable, and a
    test without database access is not made to touch one."""
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_finished.connect(close_old_connections)
