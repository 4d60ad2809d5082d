"""Query counts of list pages and endpoints: the same with 1 row as with 50."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext


@dataclass
class Measured:
    """The SQL of the request with one row and with many, and the last response."""

    one: list[str]
    many: list[str]
    response: Any

    def touching(self, table: str) -> tuple[int, int]:
        """How many queries of each request name a table whose name starts with ``table``."""
        return (
            sum(f'"{table}' in sql for sql in self.one),
            sum(f'"{table}' in sql for sql in self.many),
        )


def _get(client: Any, url: str, status: int) -> tuple[list[str], Any]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == status, (url, response.status_code)
    return [query["sql"] for query in captured.captured_queries], response


def _listing(title: str, queries: list[str]) -> str:
    lines = "\n".join(f"  {n:>3}. {sql}" for n, sql in enumerate(queries, 1))
    return f"{title} ({len(queries)} queries):\n{lines}"


def assert_flat_queries(
    client: Any,
    url: str,
    add_row: Callable[[], object],
    *,
    rows: int = 50,
    at_most: int | None = None,
    status: int = 200,
) -> Measured:
    """GET ``url`` after one ``add_row()`` and again after ``rows`` of them; the second
    request must run no more queries than the first (and neither more than ``at_most``).

    On failure the message lists both requests' SQL, so the query that grows is in sight.
    """
    add_row()
    one, _ = _get(client, url, status)
    for _ in range(rows - 1):
        add_row()
    many, response = _get(client, url, status)
    if len(many) > len(one) or (at_most is not None and len(one) > at_most):
        pytest.fail(
            f"GET {url}: {len(one)} queries with 1 row, {len(many)} with {rows}"
            + (f" (at most {at_most} allowed)" if at_most is not None else "")
            + "\n"
            + _listing("with 1 row", one)
            + "\n"
            + _listing(f"with {rows} rows", many),
            pytrace=False,
        )
    return Measured(one=one, many=many, response=response)
