"""Races against the database: the same work started in several threads at one moment,
each on its own connection, as concurrent workers or requests would be (PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import connections

T = TypeVar("T")


def run_at_once(fn: Callable[[int], T], times: int) -> list[T]:
    """``fn(0)`` … ``fn(times - 1)`` in ``times`` threads released together by a barrier;
    returns their results in that order. Each thread closes its own connections so none
    outlives the test. A thread that raises fails the test with every thread's error."""
    start = threading.Barrier(times)
    results: list[T | None] = [None] * times
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            start.wait()
            results[n] = fn(n)
        except BaseException as exc:  # noqa: BLE001 - raised below, in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise BaseExceptionGroup(f"{len(errors)} of {times} threads failed", errors)
    return results  # type: ignore[return-value] # every thread stored its result
