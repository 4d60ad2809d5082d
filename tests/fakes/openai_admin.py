"""A fake OpenAI organisation admin API on 127.0.0.1, for the real ``openai`` SDK.

It answers what Kay's usage fetcher asks, the way OpenAI does:

=========================================================  ===============================
request                                                    answer
=========================================================  ===============================
GET /v1/organization/usage/completions                     buckets of usage records
GET /v1/organization/costs                                 daily buckets of cost records
GET /v1/organization/projects                              the projects (``after`` cursor)
GET /v1/organization/projects/{id}/api_keys                a project's keys, redacted
=========================================================  ===============================

Every request needs ``Authorization: Bearer <a key in admin_keys>``: another ``sk-admin-``
key gets 401 (``invalid_api_key``), any other key 403 (project keys cannot call the
administration API). Buckets follow ``start_time`` (required), ``end_time``,
``bucket_width`` and ``limit`` (a limit above the width's maximum is a 400, as OpenAI's);
the first bucket starts at ``start_time``, later ones on the width's boundaries. Results
are grouped by the ``group_by[]`` fields asked for (the others are null) and fill the
recorded example result objects in ``tests/fixtures/``. Pages go on while ``has_more``,
through an opaque ``next_page`` passed back as ``page``. With :attr:`recorded_completions`
set, the completions endpoint replays those buckets as recorded instead, page by page.

Faults: :meth:`fail` answers the next requests to a path with the given statuses (429s and
503s carry :attr:`retry_after` as ``Retry-After``); :attr:`delay` makes every answer late.
:attr:`max_in_flight` is the most requests it was answering at once (concurrency limits).
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.fakes.server import LocalHTTPServer, load

WIDTHS = {"1m": 60, "1h": 3600, "1d": 86400}
COMPLETIONS_LIMITS = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}  # (default, max)
COSTS_LIMITS = (7, 180)
COMPLETIONS_GROUPS = {"project_id", "user_id", "api_key_id", "model", "batch", "service_tier"}
COSTS_GROUPS = {"project_id", "user_id", "line_item", "api_key_id", "api_source"}
USAGE_PATH = "/v1/organization/usage/completions"
COSTS_PATH = "/v1/organization/costs"
PROJECTS_PATH = "/v1/organization/projects"


@dataclass
class UsageRecord:
    at: int  # unix seconds
    model: str
    project_id: str
    api_key_id: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    requests: int


@dataclass
class CostRecord:
    at: int
    usd: float
    project_id: str | None
    api_key_id: str | None
    line_item: str | None


@dataclass
class Request:
    path: str
    query: str  # raw, as sent
    params: dict[str, list[str]]
    headers: dict[str, str]


def _error(message: str, *, type_: str = "invalid_request_error", code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _page_token(cursor: int) -> str:
    return "page_" + base64.b64encode(str(cursor).encode()).decode()


def _cursor(token: str) -> int | None:
    try:
        return int(base64.b64decode(token.removeprefix("page_"), validate=True).decode())
    except ValueError:
        return None


class FakeOpenAIAdmin(LocalHTTPServer):
    def __init__(self, admin_keys: set[str]) -> None:
        self.admin_keys = set(admin_keys)
        self.usage: list[UsageRecord] = []
        self.costs: list[CostRecord] = []
        self.recorded_completions: list[dict[str, Any]] | None = None
        self.requests: list[Request] = []
        self.delay = 0.0
        # Requests being answered right now, and the most there ever were at once.
        self.in_flight = 0
        self.max_in_flight = 0
        self.retry_after: str | None = None  # sent with injected 429s and 503s
        self._usage_example = load("openai_org_usage_completions_example_openapi-spec.json")
        self._costs_example = load("openai_org_costs_example_openapi-spec.json")
        self._projects_example = load("openai_org_projects_list_api-reference.json")
        self._keys_example = load("openai_org_project_api_keys_list_api-reference.json")
        self._projects: list[dict[str, Any]] = []
        self._keys: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._failures: dict[str, deque[int]] = defaultdict(deque)
        self._lock = threading.Lock()
        super().__init__()

    @property
    def base_url(self) -> str:
        """For ``OPENAI_BASE_URL``."""
        return f"{self.origin}/v1"

    # --- data ----------------------------------------------------------------------------

    def add_usage(
        self,
        at: datetime,
        *,
        model: str,
        project_id: str = "proj_abc",
        api_key_id: str = "key_abc",
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_tokens: int = 0,
        requests: int = 1,
    ) -> None:
        record = UsageRecord(
            int(at.timestamp()),
            model,
            project_id,
            api_key_id,
            input_tokens,
            output_tokens,
            cached_tokens,
            requests,
        )
        with self._lock:
            self.usage.append(record)

    def add_cost(
        self,
        at: datetime,
        *,
        usd: float,
        project_id: str | None = "proj_abc",
        api_key_id: str | None = None,
        line_item: str | None = None,
    ) -> None:
        with self._lock:
            self.costs.append(
                CostRecord(int(at.timestamp()), usd, project_id, api_key_id, line_item)
            )

    def add_project(self, project_id: str, name: str) -> None:
        project = copy.deepcopy(self._projects_example["data"][0])
        project.update(id=project_id, name=name)
        with self._lock:
            self._projects.append(project)

    def add_project_key(
        self, project_id: str, *, key_id: str, name: str, redacted_value: str
    ) -> None:
        key = copy.deepcopy(self._keys_example["data"][0])
        key.update(id=key_id, name=name, redacted_value=redacted_value)
        with self._lock:
            self._keys[project_id].append(key)

    # --- control and inspection ----------------------------------------------------------

    def fail(self, path: str, *statuses: int) -> None:
        """Answer the next requests to ``path`` with these statuses, in order."""
        with self._lock:
            self._failures[path].extend(statuses)

    def requests_to(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # --- protocol ------------------------------------------------------------------------

    def respond(self, request: Request) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            failures = self._failures.get(request.path)
            injected = failures.popleft() if failures else None
        if injected is not None:
            return self._injected(injected)
        auth = request.headers.get("authorization", "")
        key = auth[7:] if auth.lower().startswith("bearer ") else ""
        if key not in self.admin_keys:
            if not key or key.startswith("sk-admin-"):
                shown = f"{key[:3]}*****{key[-4:]}" if key else ""
                return (
                    401,
                    _error(f"Incorrect API key provided: {shown}.", code="invalid_api_key"),
                    {},
                )
            return (
                403,
                _error(
                    "You have insufficient permissions for this operation. Missing scopes: "
                    "api.usage.read. Check that you have the correct role in your organization."
                ),
                {},
            )
        params = {name.removesuffix("[]"): values for name, values in request.params.items()}
        if request.path == USAGE_PATH:
            return self._completions(params)
        if request.path == COSTS_PATH:
            return self._costs(params)
        if request.path == PROJECTS_PATH:
            return 200, self._listing(self._projects, self._projects_example, params), {}
        parts = request.path.split("/")
        if request.path.startswith(PROJECTS_PATH + "/") and parts[-1] == "api_keys":
            project_id = parts[-2]
            if project_id not in {p["id"] for p in self._projects}:
                return 404, _error(f"No such project: {project_id}"), {}
            return 200, self._listing(self._keys[project_id], self._keys_example, params), {}
        return 404, _error(f"Invalid URL (GET {request.path})"), {}

    def _injected(self, status: int) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers = {"Retry-After": self.retry_after} if self.retry_after else {}
        if status == 429:
            body = _error(
                "Rate limit reached for requests. Please try again later.",
                type_="requests",
                code="rate_limit_exceeded",
            )
            return status, body, headers
        body = _error(
            "The server had an error while processing your request. Sorry about that!",
            type_="server_error",
        )
        return status, body, headers if status == 503 else {}

    def _window(
        self, params: dict[str, list[str]], width: int, limits: tuple[int, int]
    ) -> tuple[list[tuple[int, int]], int | None] | str:
        """The page's buckets [(start, end)] and the next page's cursor, or an error."""
        try:
            start = int(params["start_time"][0])
            end = int(params.get("end_time", [str(int(time.time()))])[0])
            limit = int(params.get("limit", [str(limits[0])])[0])
        except (KeyError, ValueError):
            return "start_time is required; start_time, end_time and limit are integers"
        if not 1 <= limit <= limits[1]:
            return f"limit must be between 1 and {limits[1]} for this bucket width"
        cursor = start
        if "page" in params:
            decoded = _cursor(params["page"][0])
            if decoded is None:
                return "Invalid page token"
            cursor = decoded
        buckets: list[tuple[int, int]] = []
        while cursor < end and len(buckets) < limit:
            bucket_end = min((cursor // width + 1) * width, end)
            buckets.append((cursor, bucket_end))
            cursor = bucket_end
        return buckets, cursor if cursor < end else None

    def _completions(self, params: dict[str, list[str]]) -> tuple[int, dict[str, Any], dict]:
        if self.recorded_completions is not None:
            return 200, self._replay(params), {}
        width_name = params.get("bucket_width", ["1d"])[0]
        if width_name not in WIDTHS:
            return 400, _error(f"Invalid bucket_width: {width_name}"), {}
        groups = params.get("group_by", [])
        if not set(groups) <= COMPLETIONS_GROUPS:
            return 400, _error("Invalid group_by"), {}
        window = self._window(params, WIDTHS[width_name], COMPLETIONS_LIMITS[width_name])
        if isinstance(window, str):
            return 400, _error(window), {}
        buckets, next_cursor = window
        template = self._usage_example["data"][0]["results"][0]
        data = []
        for start, end in buckets:
            grouped: dict[tuple, list[UsageRecord]] = defaultdict(list)
            for record in self.usage:
                if start <= record.at < end:
                    grouped[tuple(getattr(record, g, None) for g in groups)].append(record)
            results = [
                self._usage_result(template, dict(zip(groups, key, strict=True)), records)
                for key, records in sorted(grouped.items(), key=lambda item: str(item[0]))
            ]
            data.append(
                {"object": "bucket", "start_time": start, "end_time": end, "results": results}
            )
        return 200, self._page(self._usage_example, data, next_cursor), {}

    @staticmethod
    def _usage_result(
        template: dict[str, Any], group: dict[str, str], records: list[UsageRecord]
    ) -> dict[str, Any]:
        # The example's fields in its order; every figure not computed below is 0.
        result: dict[str, Any] = dict.fromkeys(template, 0)
        result["object"] = template["object"]
        inputs = sum(r.input_tokens for r in records)
        cached = sum(r.cached_tokens for r in records)
        outputs = sum(r.output_tokens for r in records)
        result.update(
            input_tokens=inputs,
            input_cached_tokens=cached,
            input_uncached_tokens=inputs - cached,
            input_text_tokens=inputs - cached,
            input_cached_text_tokens=cached,
            output_tokens=outputs,
            output_text_tokens=outputs,
            num_model_requests=sum(r.requests for r in records),
            project_id=None,
            user_id=None,
            api_key_id=None,
            model=None,
            batch=None,
            service_tier=None,
        )
        result.update(group)
        return result

    def _costs(self, params: dict[str, list[str]]) -> tuple[int, dict[str, Any], dict]:
        if params.get("bucket_width", ["1d"])[0] != "1d":
            return 400, _error("bucket_width must be 1d for costs"), {}
        groups = params.get("group_by", [])
        if not set(groups) <= COSTS_GROUPS:
            return 400, _error("Invalid group_by"), {}
        window = self._window(params, WIDTHS["1d"], COSTS_LIMITS)
        if isinstance(window, str):
            return 400, _error(window), {}
        buckets, next_cursor = window
        template = self._costs_example["data"][0]["results"][0]
        data = []
        for start, end in buckets:
            grouped: dict[tuple, float] = defaultdict(float)
            for record in self.costs:
                if start <= record.at < end:
                    grouped[tuple(getattr(record, g, None) for g in groups)] += record.usd
            results = []
            for key, usd in sorted(grouped.items(), key=lambda item: str(item[0])):
                result = copy.deepcopy(template)
                result["amount"]["value"] = usd
                result.update(dict(zip(groups, key, strict=True)))
                results.append(result)
            data.append(
                {"object": "bucket", "start_time": start, "end_time": end, "results": results}
            )
        return 200, self._page(self._costs_example, data, next_cursor), {}

    def _replay(self, params: dict[str, list[str]]) -> dict[str, Any]:
        buckets = self.recorded_completions or []
        offset = _cursor(params["page"][0]) if "page" in params else 0
        limit = int(params.get("limit", ["7"])[0])
        data = buckets[offset or 0 : (offset or 0) + limit]
        following = (offset or 0) + limit
        return self._page(
            self._usage_example, data, following if following < len(buckets) else None
        )

    @staticmethod
    def _page(example: dict[str, Any], data: list, next_cursor: int | None) -> dict[str, Any]:
        page = {name: value for name, value in example.items() if name != "data"}
        page.update(
            data=data,
            has_more=next_cursor is not None,
            next_page=_page_token(next_cursor) if next_cursor is not None else None,
        )
        return page

    @staticmethod
    def _listing(
        items: list[dict[str, Any]], example: dict[str, Any], params: dict[str, list[str]]
    ) -> dict[str, Any]:
        """A cursor list (``after`` an id, ``limit`` 1–100) in the example's envelope."""
        limit = int(params.get("limit", ["20"])[0])
        after = params.get("after", [None])[0]
        ids = [item["id"] for item in items]
        begin = ids.index(after) + 1 if after in ids else 0
        page = items[begin : begin + limit]
        body = {name: value for name, value in example.items() if name != "data"}
        body.update(
            data=page,
            first_id=page[0]["id"] if page else None,
            last_id=page[-1]["id"] if page else None,
            has_more=begin + limit < len(items),
        )
        return body

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                request = Request(
                    path=url.path,
                    query=url.query,
                    params=parse_qs(url.query),
                    headers={name.lower(): value for name, value in self.headers.items()},
                )
                with fake._lock:
                    fake.requests.append(request)
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    if fake.delay:
                        time.sleep(fake.delay)
                    status, body, headers = fake.respond(request)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1
                payload = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
