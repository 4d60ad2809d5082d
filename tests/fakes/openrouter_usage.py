"""A fake OpenRouter spend API on 127.0.0.1: ``GET /api/v1/key`` and ``GET /api/v1/activity``,
as Kay's usage fetcher calls them (the catalog's fake is ``tests.fakes.openrouter``).

- ``/key`` answers ``{"data": {label, limit, limit_remaining, limit_reset, usage,
  usage_daily, usage_weekly, usage_monthly, byok_usage…, is_free_tier, is_management_key,
  is_provisioning_key, expires_at}}`` in US dollars for the key in ``Authorization:
  Bearer``; an unknown key gets 401.
- ``/activity`` (management keys only; any other key gets 403) answers ``{"data": [...]}``
  of items ``{date, model, model_permaslug, endpoint_id, provider_name, usage,
  byok_usage_inference, requests, prompt_tokens, completion_tokens, reasoning_tokens}``:
  one per day, model and endpoint, for the 30 complete UTC days before today (``today``).

Shapes follow OpenRouter's API reference (``ActivityItem``, the ``/key`` response); no
recorded body of either is public. Faults: :meth:`fail` answers the next requests to a
path with the given statuses (429s carry :attr:`retry_after`); :attr:`delay` makes answers
late.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlparse

from tests.fakes.server import JSONHandler, LocalHTTPServer

KEY_PATH = "/api/v1/key"
ACTIVITY_PATH = "/api/v1/activity"


@dataclass
class KeyState:
    usage_daily: float = 0.0
    usage_monthly: float = 0.0
    limit: float | None = None
    limit_remaining: float | None = None
    limit_reset: str | None = None
    management: bool = False
    activity: list[dict[str, Any]] = field(default_factory=list)


class FakeOpenRouterUsage(LocalHTTPServer):
    def __init__(self, today: date) -> None:
        self.today = today
        self.keys: dict[str, KeyState] = {}
        self.requests: list[str] = []
        self.delay = 0.0
        self.retry_after: str | None = None
        self._failures: dict[str, deque[int]] = defaultdict(deque)
        self._lock = threading.Lock()
        super().__init__()

    @property
    def base_url(self) -> str:
        """For ``OPENROUTER_BASE_URL``."""
        return f"{self.origin}/api/v1"

    def add_key(self, secret: str, **state: Any) -> KeyState:
        self.keys[secret] = KeyState(**state)
        return self.keys[secret]

    def add_activity(
        self,
        secret: str,
        day: date,
        *,
        model: str,
        usd: float,
        prompt: int = 0,
        completion: int = 0,
        requests: int = 1,
        provider: str = "OpenAI",
    ) -> None:
        """One endpoint's activity of the management key ``secret``'s account on ``day``."""
        self.keys[secret].activity.append(
            {
                "date": day.isoformat(),
                "model": model,
                "model_permaslug": f"{model}-2025-04-14",
                "endpoint_id": f"ep-{provider.lower()}-{len(self.keys[secret].activity)}",
                "provider_name": provider,
                "usage": usd,
                "byok_usage_inference": 0,
                "requests": requests,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "reasoning_tokens": 0,
            }
        )

    def fail(self, path: str, *statuses: int) -> None:
        with self._lock:
            self._failures[path].extend(statuses)

    def requests_to(self, path: str) -> int:
        with self._lock:
            return self.requests.count(path)

    def respond(self, path: str, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.requests.append(path)
            failure = self._failures[path].popleft() if self._failures[path] else None
        if failure is not None:
            extra = {"Retry-After": self.retry_after} if failure == 429 and self.retry_after else {}
            return failure, {"error": {"code": failure, "message": "Injected failure"}}, extra
        bearer = headers.get("authorization", "")
        state = self.keys.get(bearer.removeprefix("Bearer "))
        if state is None:
            return 401, {"error": {"code": 401, "message": "No auth credentials found"}}, {}
        if path == KEY_PATH:
            return 200, {"data": self._key(bearer[-3:], state)}, {}
        if path == ACTIVITY_PATH:
            if not state.management:
                message = "Only management keys can fetch activity for an account"
                return 403, {"error": {"code": 403, "message": message}}, {}
            first = self.today - timedelta(days=30)
            items = [
                item
                for item in state.activity
                if first <= date.fromisoformat(item["date"]) < self.today
            ]
            return 200, {"data": items}, {}
        return 404, {"error": {"code": 404, "message": "Not Found"}}, {}

    @staticmethod
    def _key(tail: str, state: KeyState) -> dict[str, Any]:
        return {
            "label": f"sk-or-v1-abc...{tail}",
            "limit": state.limit,
            "limit_remaining": state.limit_remaining,
            "limit_reset": state.limit_reset,
            "include_byok_in_limit": False,
            "usage": state.usage_monthly,
            "usage_daily": state.usage_daily,
            "usage_weekly": state.usage_monthly,
            "usage_monthly": state.usage_monthly,
            "byok_usage": 0,
            "byok_usage_daily": 0,
            "byok_usage_weekly": 0,
            "byok_usage_monthly": 0,
            "is_free_tier": False,
            "is_management_key": state.management,
            "is_provisioning_key": state.management,
            "expires_at": None,
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(JSONHandler):
            def do_GET(self) -> None:  # noqa: N802
                headers = {name.lower(): value for name, value in self.headers.items()}
                if fake.delay:
                    time.sleep(fake.delay)
                status, body, extra = fake.respond(urlparse(self.path).path, headers)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_json(status, body, headers=extra)

        return Handler
