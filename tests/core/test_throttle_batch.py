"""core.throttling: DRF's limits, counted as DRF counts them — in one atomic Redis call
per request with Redis (every throttle of a BatchedThrottlesMixin view at once), else with
one cache read and one write per request instead of two per throttle."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache, caches
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from core import throttling
from core.throttling import BatchedThrottlesMixin, UserThrottle

pytestmark = pytest.mark.django_db
in_redis = bool(settings.REDIS_URL)


class ThreeAMinute(UserThrottle):
    scope = "test_three"
    rate = "3/min"


class TenAMinute(UserThrottle):
    scope = "test_ten"
    rate = "10/min"


class DrfView(APIView):
    throttle_classes = [ThreeAMinute, TenAMinute]

    def get(self, request: Any) -> Response:
        return Response({"ok": True})


class BatchedView(BatchedThrottlesMixin, DrfView):
    pass


def _statuses(view: type[APIView], user: Any, count: int) -> list[tuple[int, str | None]]:
    factory = APIRequestFactory()
    answers = []
    for _ in range(count):
        request = factory.get("/")
        force_authenticate(request, user=user)
        response = view.as_view()(request)
        answers.append((response.status_code, response.get("Retry-After")))
    return answers


def _counted(key: str) -> int:
    if in_redis:
        client = caches["default"]._cache.get_client()
        return int(client.zcard(cache.make_key(f"rate:{key}")))
    return len(cache.get(key, []))


def _histories(user: Any) -> tuple[int, int]:
    return _counted(f"throttle_test_three_{user.pk}"), _counted(f"throttle_test_ten_{user.pk}")


@pytest.mark.parametrize("view", [DrfView, BatchedView])
def test_limits_and_counts_are_drfs(view, alice):
    cache.clear()
    answers = _statuses(view, alice, 5)
    assert [status for status, _ in answers] == [200, 200, 200, 429, 429]
    assert all(retry and int(retry) > 0 for status, retry in answers if status == 429)
    # Refused by the tighter limit, a request still counts against the looser one.
    assert _histories(alice) == (3, 5)


def test_a_request_reads_once_and_writes_once(alice, monkeypatch):
    cache.clear()
    calls: list[str] = []
    for name in ("get", "set", "get_many", "set_many"):
        real = getattr(cache, name)
        monkeypatch.setattr(
            cache,
            name,
            lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k),
        )
    hits = throttling.sliding_window_hits
    monkeypatch.setattr(
        throttling,
        "sliding_window_hits",
        lambda *a, **k: calls.append("one redis call") or hits(*a, **k),
    )
    _statuses(BatchedView, alice, 1)
    if in_redis:
        assert calls == ["one redis call"]
    else:
        # (The database cache, without Redis, sets many keys one by one, inside set_many.)
        assert calls[:2] == ["get_many", "set_many"] and "get" not in calls


@pytest.mark.skipif(not in_redis, reason="the atomic count is Redis's")
def test_requests_arriving_together_never_pass_the_limit(alice):
    """DRF reads a history and writes it back: requests at once could each see room."""
    cache.clear()
    allowed: list[bool] = []
    start = threading.Barrier(20)

    def request() -> None:
        start.wait()
        (outcome,) = throttling.sliding_window_hits(cache, [("together", 60, 5)])
        allowed.append(outcome == throttling.ALLOWED)

    threads = [threading.Thread(target=request) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert allowed.count(True) == 5 and len(allowed) == 20


@pytest.fixture
def now(monkeypatch) -> list[float]:
    """The throttles' clock, set by the test (``now[0] = ...``), from an empty cache."""
    cache.clear()
    clock = [1000.0]
    monkeypatch.setattr(throttling.time, "time", lambda: clock[0])
    return clock


@pytest.mark.skipif(not in_redis, reason="the Redis window")
def test_the_wait_is_drfs_and_the_window_slides(alice, now):
    limit = [("sliding", 60, 2)]
    assert throttling.sliding_window_hits(cache, limit) == [throttling.ALLOWED]
    now[0] = 1030.0
    assert throttling.sliding_window_hits(cache, limit) == [throttling.ALLOWED]
    now[0] = 1040.0
    # Full: the oldest (at 1000) leaves the window at 1060, 20 s on.
    assert throttling.sliding_window_hits(cache, limit) == [20.0]
    now[0] = 1060.5
    assert throttling.sliding_window_hits(cache, limit) == [throttling.ALLOWED]


class Closed(UserThrottle):
    scope = "test_closed"
    rate = "0/min"


class ClosedView(DrfView):
    throttle_classes = [Closed, TenAMinute]


class ClosedBatchedView(BatchedThrottlesMixin, ClosedView):
    pass


@pytest.mark.parametrize("view", [ClosedView, ClosedBatchedView])
def test_a_limit_of_zero_refuses_with_a_wait_as_drf_does(view, alice):
    """Attack review 20b: with no history to read, the script failed (a 500)."""
    cache.clear()
    (answer,) = _statuses(view, alice, 1)
    assert answer == (429, "60")


@pytest.mark.skipif(not in_redis, reason="the Redis window")
def test_a_wait_under_a_millisecond_still_says_when(alice, now):
    """Attack review 20b: rounded down, it became 0 and the Retry-After went missing."""
    limit = [("sub_ms", 60, 1)]
    assert throttling.sliding_window_hits(cache, limit) == [throttling.ALLOWED]
    now[0] = 1059.9996
    (wait,) = throttling.sliding_window_hits(cache, limit)
    assert wait is not None and wait > 0
