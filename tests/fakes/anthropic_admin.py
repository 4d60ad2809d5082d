"""A fake Anthropic Admin API on 127.0.0.1: the legacy Usage and Cost API and the API key
listing, as Kay's usage fetcher calls them.

============================================  =======================================
request                                       answer
============================================  =======================================
GET /v1/organizations/usage_report/messages   daily/hourly buckets of Messages usage
GET /v1/organizations/cost_report             daily buckets of cost lines (cents)
GET /v1/organizations/api_keys                the organisation's keys (``after_id``)
============================================  =======================================

Shapes follow Anthropic's API reference for these endpoints (no recorded body of them is
public): a bucket is ``{starting_at, ending_at, results}``; usage results carry
``uncached_input_tokens``, ``cache_creation.{ephemeral_5m,ephemeral_1h}_input_tokens``,
``cache_read_input_tokens``, ``output_tokens``, ``server_tool_use`` and the ``group_by[]``
fields asked for (the others null); cost results carry ``amount`` as a decimal string in
cents, ``currency``, and with ``group_by[]=description`` the ``model``, ``cost_type``,
``token_type`` and ``description``. ``starting_at`` is required; a bucket covers each day
from it up to ``ending_at``, empty or not; ``limit`` above 31 daily buckets is a 400; pages
go on while ``has_more`` through an opaque ``next_page`` passed back as ``page``.

Every request needs ``anthropic-version`` and an ``x-api-key`` in ``admin_keys`` (else
401, ``authentication_error``). Faults: :meth:`fail` answers the next requests to a path
with the given statuses (429s carry :attr:`retry_after`); :attr:`delay` makes answers late.
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.fakes.server import JSONHandler, LocalHTTPServer

USAGE_PATH = "/v1/organizations/usage_report/messages"
COST_PATH = "/v1/organizations/cost_report"
KEYS_PATH = "/v1/organizations/api_keys"
LIMITS = {"1d": (7, 31), "1h": (24, 168)}  # (default, max) buckets per page
TOKEN_LABELS = {
    "uncached_input_tokens": "Input Tokens",
    "output_tokens": "Output Tokens",
    "cache_read_input_tokens": "Input Tokens, Cache Hit",
    "cache_creation.ephemeral_5m_input_tokens": "Input Tokens, Cache Write 5m",
    "cache_creation.ephemeral_1h_input_tokens": "Input Tokens, Cache Write 1h",
}


@dataclass
class Usage:
    at: datetime
    model: str
    api_key_id: str | None
    workspace_id: str | None
    uncached: int = 0
    cache_read: int = 0
    cache_5m: int = 0
    cache_1h: int = 0
    output: int = 0


@dataclass
class Cost:
    day: datetime
    cents: str
    workspace_id: str | None
    model: str | None
    cost_type: str
    token_type: str | None


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeAnthropicAdmin(LocalHTTPServer):
    def __init__(self, admin_keys: set[str]) -> None:
        self.admin_keys = set(admin_keys)
        self.usage: list[Usage] = []
        self.costs: list[Cost] = []
        self.api_keys: list[dict[str, Any]] = []
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.delay = 0.0
        self.retry_after: str | None = None
        self._failures: dict[str, deque[int]] = defaultdict(deque)
        self._lock = threading.Lock()
        super().__init__()

    @property
    def base_url(self) -> str:
        """For ``ANTHROPIC_BASE_URL``."""
        return self.origin

    # --- data and faults ---------------------------------------------------------------

    def add_usage(
        self,
        at: datetime,
        *,
        model: str,
        api_key_id: str | None = "apikey_a",
        workspace_id: str | None = "wrkspc_a",
        **tokens: int,
    ) -> None:
        """Usage at ``at``; ``tokens``: uncached, cache_read, cache_5m, cache_1h, output."""
        self.usage.append(Usage(at, model, api_key_id, workspace_id, **tokens))

    def add_cost(
        self,
        day: datetime,
        cents: str,
        *,
        model: str | None = None,
        token_type: str | None = None,
        workspace_id: str | None = "wrkspc_a",
        cost_type: str = "tokens",
    ) -> None:
        self.costs.append(Cost(day, cents, workspace_id, model, cost_type, token_type))

    def add_api_key(self, key_id: str, *, name: str, hint: str, workspace_id: str | None) -> None:
        self.api_keys.append(
            {
                "id": key_id,
                "type": "api_key",
                "name": name,
                "workspace_id": workspace_id,
                "created_at": "2025-05-01T12:00:00Z",
                "created_by": {"id": "user_01WCz1FkmYMm4gnmykNKUu3Q", "type": "user"},
                "partial_key_hint": hint,
                "status": "active",
            }
        )

    def fail(self, path: str, *statuses: int) -> None:
        """Answer the next requests to ``path`` with these statuses, then normally."""
        with self._lock:
            self._failures[path].extend(statuses)

    def requests_to(self, path: str) -> list[dict[str, list[str]]]:
        with self._lock:
            return [params for p, params in self.requests if p == path]

    # --- protocol ------------------------------------------------------------------------

    def respond(self, path: str, params: dict[str, list[str]], headers: dict[str, str]):
        with self._lock:
            self.requests.append((path, params))
            failure = self._failures[path].popleft() if self._failures[path] else None
        if failure is not None:
            extra = {"retry-after": self.retry_after} if failure == 429 and self.retry_after else {}
            kind = "rate_limit_error" if failure == 429 else "api_error"
            return failure, _error(kind, "Injected failure"), extra
        if headers.get("x-api-key") not in self.admin_keys:
            return 401, _error("authentication_error", "invalid x-api-key"), {}
        if not headers.get("anthropic-version"):
            return 400, _error("invalid_request_error", "anthropic-version header is required"), {}
        if path == KEYS_PATH:
            return 200, self._keys(params), {}
        if path in (USAGE_PATH, COST_PATH):
            try:
                return 200, self._report(path, params), {}
            except ValueError as exc:
                return 400, _error("invalid_request_error", str(exc)), {}
        return 404, _error("not_found_error", "Not found"), {}

    def _report(self, path: str, params: dict[str, list[str]]) -> dict[str, Any]:
        width = params.get("bucket_width", ["1d"])[0]
        if width not in LIMITS or (path == COST_PATH and width != "1d"):
            raise ValueError("bucket_width: invalid value")
        step = timedelta(days=1) if width == "1d" else timedelta(hours=1)
        default, most = LIMITS[width]
        limit = int(params.get("limit", [default])[0])
        if not 1 <= limit <= most:
            raise ValueError(f"limit: must be between 1 and {most}")
        if "starting_at" not in params:
            raise ValueError("starting_at: field required")
        start = self._snap(datetime.fromisoformat(params["starting_at"][0]), width)
        end = (
            datetime.fromisoformat(params["ending_at"][0]).astimezone(UTC)
            if "ending_at" in params
            else start + step * limit
        )
        page = params.get("page", [None])[0]
        if page:
            start = datetime.fromisoformat(base64.b64decode(page.removeprefix("page_")).decode())
        groups = set(params.get("group_by[]", []))
        buckets = []
        at = start
        while at < end and len(buckets) < limit:
            results = (
                self._usage_results(at, at + step, groups)
                if path == USAGE_PATH
                else self._cost_results(at, groups)
            )
            buckets.append(
                {"starting_at": _iso(at), "ending_at": _iso(at + step), "results": results}
            )
            at += step
        more = at < end
        token = "page_" + base64.b64encode(at.isoformat().encode()).decode() if more else None
        return {"data": buckets, "has_more": more, "next_page": token}

    @staticmethod
    def _snap(moment: datetime, width: str) -> datetime:
        moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return moment.replace(hour=0) if width == "1d" else moment

    def _usage_results(self, start: datetime, end: datetime, groups: set[str]) -> list[dict]:
        sums: dict[tuple, dict[str, int]] = {}
        for u in self.usage:
            if not start <= u.at < end:
                continue
            key = tuple(
                getattr(u, name) if name in groups else None
                for name in ("model", "api_key_id", "workspace_id")
            )
            acc = sums.setdefault(key, defaultdict(int))
            for name in ("uncached", "cache_read", "cache_5m", "cache_1h", "output"):
                acc[name] += getattr(u, name)
        return [
            {
                "uncached_input_tokens": acc["uncached"],
                "cache_creation": {
                    "ephemeral_1h_input_tokens": acc["cache_1h"],
                    "ephemeral_5m_input_tokens": acc["cache_5m"],
                },
                "cache_read_input_tokens": acc["cache_read"],
                "output_tokens": acc["output"],
                "server_tool_use": {"web_search_requests": 0},
                "model": model,
                "api_key_id": key_id,
                "workspace_id": workspace,
                "service_tier": None,
                "context_window": None,
                "inference_geo": None,
            }
            for (model, key_id, workspace), acc in sums.items()
        ]

    def _cost_results(self, day: datetime, groups: set[str]) -> list[dict]:
        by_description = "description" in groups
        results = []
        for c in self.costs:
            if c.day != day:
                continue
            label = TOKEN_LABELS.get(c.token_type or "", c.cost_type.replace("_", " ").title())
            results.append(
                {
                    "currency": "USD",
                    "amount": c.cents,
                    "workspace_id": c.workspace_id if "workspace_id" in groups else None,
                    "description": f"{c.model} Usage - {label}" if by_description else None,
                    "cost_type": c.cost_type if by_description else None,
                    "context_window": "0-200k" if by_description and c.model else None,
                    "model": c.model if by_description else None,
                    "service_tier": "standard" if by_description and c.model else None,
                    "token_type": c.token_type if by_description else None,
                    "inference_geo": None,
                }
            )
        return results

    def _keys(self, params: dict[str, list[str]]) -> dict[str, Any]:
        limit = int(params.get("limit", ["20"])[0])
        after = params.get("after_id", [None])[0]
        keys = self.api_keys
        if after:
            ids = [k["id"] for k in keys]
            keys = keys[ids.index(after) + 1 :] if after in ids else []
        page = keys[:limit]
        return {
            "data": page,
            "has_more": len(keys) > limit,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(JSONHandler):
            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                headers = {name.lower(): value for name, value in self.headers.items()}
                if fake.delay:
                    time.sleep(fake.delay)
                status, body, extra = fake.respond(url.path, parse_qs(url.query), headers)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_json(status, body, headers=extra)

        return Handler
