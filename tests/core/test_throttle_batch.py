"""core.throttling.BatchedThrottlesMixin: DRF's limits, counted as DRF counts them, with
one cache read and one write per request instead of two per throttle."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from core.throttling import BatchedThrottlesMixin, UserThrottle

pytestmark = pytest.mark.django_db


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


def _histories(user: Any) -> tuple[int, int]:
    three = len(cache.get(f"throttle_test_three_{user.pk}", []))
    ten = len(cache.get(f"throttle_test_ten_{user.pk}", []))
    return three, ten


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
    _statuses(BatchedView, alice, 1)
    # (The database cache, without Redis, sets many keys one by one, inside set_many.)
    assert calls[:2] == ["get_many", "set_many"] and "get" not in calls
