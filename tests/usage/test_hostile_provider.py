"""A usage provider that misbehaves on purpose: listings whose pages never end, and figures
no real usage has (far past what a database column holds, or not a finite number). Each
fetch must stop and say so in Kay's words, never loop for ever or crash the task."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from core.errors import ProviderError
from tests.fakes.anthropic_admin import FakeAnthropicAdmin
from tests.fakes.hostile import HostileServer, compressed, huge
from tests.fakes.server import JSONHandler, LocalHTTPServer
from tests.keys.factories import ApiKeyFactory
from usage import providers
from usage.models import UsageBucket, UsageFetchState
from usage.providers import openrouter
from usage.providers.anthropic import anthropic_api_keys, fetch_anthropic_usage
from usage.providers.openai import fetch_openai_usage, openai_project_keys
from usage.records import BucketRow
from usage.services.fetching import usage_fetch_for_key

DAY = datetime(2025, 1, 10, tzinfo=UTC)
OPENAI_ADMIN = "sk-admin-FakeOrgAdminKey0000000000000000000000Zz01"
ANTHROPIC_ADMIN = "sk-ant-admin01-" + "A" * 80
# The endless fake gives up after this many requests (so an old, unbounded loop ends).
GIVE_UP = 3000


class Endless(LocalHTTPServer):
    """Every listing says ``has_more`` with a fresh cursor, until GIVE_UP requests."""

    def __init__(self, *, same_cursor: bool = False) -> None:
        self.count = 0
        self.same_cursor = same_cursor
        self._lock = threading.Lock()
        super().__init__()

    def answer(self, path: str) -> dict[str, Any]:
        with self._lock:
            self.count += 1
            n = self.count
        more = n < GIVE_UP
        token = "same" if self.same_cursor else f"p{n}"
        if path.endswith("/usage/completions") or path.endswith("/costs"):
            return {"object": "page", "data": [], "has_more": more, "next_page": token}
        if path.endswith("/organization/projects"):
            project = {
                "id": f"proj_{n}",
                "object": "organization.project",
                "name": "p",
                "created_at": 0,
                "status": "active",
            }
            return {
                "object": "list",
                "data": [project],
                "first_id": "x",
                "last_id": token,
                "has_more": more,
            }
        if path.endswith("/api_keys") and "/projects/" in path:
            return {"object": "list", "data": [], "has_more": False}
        if path.endswith("/organizations/api_keys"):
            return {"data": [], "has_more": more, "last_id": token}
        return {"data": [], "has_more": more, "next_page": token}  # Anthropic's reports

    def _handler(self) -> type[JSONHandler]:
        fake = self

        class Handler(JSONHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_json(200, fake.answer(urlparse(self.path).path))

        return Handler


@pytest.fixture
def endless(settings):
    server = Endless().start()
    settings.OPENAI_BASE_URL = server.origin + "/v1"
    settings.ANTHROPIC_BASE_URL = server.origin
    yield server
    server.stop()


def test_openai_usage_pages_that_never_end_stop_with_an_error(endless):
    with pytest.raises(ProviderError):
        fetch_openai_usage(
            admin_key=OPENAI_ADMIN, start=DAY, end=DAY + timedelta(days=1), bucket_width="1h"
        )
    assert endless.count < GIVE_UP


def test_openai_project_listing_that_never_ends_stops_with_an_error(endless):
    with pytest.raises(ProviderError):
        openai_project_keys(admin_key=OPENAI_ADMIN)
    assert endless.count < GIVE_UP


def test_openai_project_listing_repeating_its_cursor_stops_with_an_error(endless):
    endless.same_cursor = True
    with pytest.raises(ProviderError):
        openai_project_keys(admin_key=OPENAI_ADMIN)
    assert endless.count < GIVE_UP


def test_anthropic_report_pages_that_never_end_stop_with_an_error(endless):
    with pytest.raises(ProviderError):
        fetch_anthropic_usage(admin_key=ANTHROPIC_ADMIN, start=DAY, end=DAY + timedelta(days=1))
    assert endless.count < GIVE_UP


def test_anthropic_key_listing_that_never_ends_stops_with_an_error(endless):
    with pytest.raises(ProviderError):
        anthropic_api_keys(admin_key=ANTHROPIC_ADMIN)
    assert endless.count < GIVE_UP


# --- Figures no real usage has -------------------------------------------------------------


class Figures(LocalHTTPServer):
    """One day of OpenAI usage and costs with the figures a test sets (raw JSON, so NaN and
    numbers past any column can be sent)."""

    def __init__(self) -> None:
        self.tokens = "10"
        self.cost = "0.5"
        super().__init__()

    def answer(self, path: str, query: dict[str, list[str]]) -> bytes:
        start = int(query["start_time"][0])
        if path.endswith("/usage/completions"):
            result = {
                "object": "organization.usage.completions.result",
                "input_tokens": "@TOKENS@",
                "output_tokens": 1,
                "input_cached_tokens": 0,
                "num_model_requests": 1,
                "model": "gpt-4o-mini",
                "project_id": "proj_1",
                "api_key_id": "key_1",
            }
        else:
            result = {
                "object": "organization.costs.result",
                "amount": {"value": "@COST@", "currency": "usd"},
                "line_item": "gpt-4o-mini, input",
                "project_id": "proj_1",
                "api_key_id": "key_1",
            }
        bucket = {
            "object": "bucket",
            "start_time": start,
            "end_time": start + 86400,
            "results": [result],
        }
        page = {"object": "page", "data": [bucket], "has_more": False, "next_page": None}
        raw = json.dumps(page)
        # Raw JSON numbers (NaN, 1e300, 2**63): what a JSON encoder would not write.
        raw = raw.replace('"@TOKENS@"', self.tokens).replace('"@COST@"', self.cost)
        return raw.encode()

    def _handler(self) -> type[JSONHandler]:
        fake = self

        class Handler(JSONHandler):
            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                self.send_json(200, fake.answer(url.path, parse_qs(url.query)))

        return Handler


@pytest.fixture
def figures(settings):
    server = Figures().start()
    settings.OPENAI_BASE_URL = server.origin + "/v1"
    yield server
    server.stop()


def fetch_day():
    return fetch_openai_usage(
        admin_key=OPENAI_ADMIN, start=DAY, end=DAY + timedelta(days=1), bucket_width="1d"
    )


@pytest.mark.parametrize("cost", ["1e300", "NaN", "Infinity", "1e20"])
def test_an_openai_cost_no_bucket_can_hold_is_refused_in_kays_words(figures, cost):
    figures.cost = cost
    with pytest.raises(ProviderError):
        fetch_day()


def test_openai_token_counts_past_a_database_column_are_refused_in_kays_words(figures):
    figures.tokens = str(10**20)
    with pytest.raises(ProviderError):
        fetch_day()


def test_a_bucket_row_refuses_figures_no_column_can_hold():
    base = {
        "provider": "openai",
        "model": "m",
        "bucket_start": DAY,
        "granularity": "day",
        "input_tokens": 1,
        "output_tokens": 1,
        "cached_tokens": 0,
        "requests": 1,
        "cost_micros": 1,
    }
    for name in ("input_tokens", "output_tokens", "requests", "cost_micros"):
        with pytest.raises(ValueError):
            BucketRow(**{**base, name: 2**63})


@pytest.mark.parametrize("model", ["gpt\x00-4o", "gpt-\ud800"])
def test_a_bucket_row_refuses_a_name_no_column_can_store(model):
    with pytest.raises(ValueError):
        BucketRow(
            provider="openai",
            model=model,
            bucket_start=DAY,
            granularity="day",
            input_tokens=1,
            output_tokens=1,
            cached_tokens=0,
            requests=1,
            cost_micros=1,
        )


@pytest.mark.django_db
def test_a_fetch_of_huge_figures_is_an_error_on_the_key_not_a_crashed_task(figures, alice):
    figures.tokens = str(2**63)
    key = ApiKeyFactory(owner=alice, secret=OPENAI_ADMIN)

    result = usage_fetch_for_key(api_key_id=key.pk, since=DAY)

    assert result.status == "error"
    state = UsageFetchState.objects.get(api_key=key)
    assert state.last_status == "error"
    assert OPENAI_ADMIN not in state.last_error
    assert not UsageBucket.objects.filter(owner=alice).exists()


@pytest.mark.parametrize("field", ["limit", "limit_remaining", "usage_daily", "usage_monthly"])
def test_an_openrouter_amount_past_any_column_is_refused_in_kays_words(field):
    with pytest.raises(ProviderError):
        openrouter._account({"usage_daily": 0, "usage_monthly": 0, field: 1e20})


@pytest.mark.parametrize("cents", ["1e300", "1e20"])
def test_an_anthropic_cost_no_bucket_can_hold_is_refused_in_kays_words(settings, cents):
    server = FakeAnthropicAdmin({ANTHROPIC_ADMIN}).start()
    settings.ANTHROPIC_BASE_URL = server.base_url
    try:
        server.add_cost(DAY, cents, model="claude-sonnet-4-5", token_type="output_tokens")
        with pytest.raises(ProviderError):
            fetch_anthropic_usage(admin_key=ANTHROPIC_ADMIN, start=DAY, end=DAY + timedelta(days=1))
    finally:
        server.stop()


# --- A provider that echoes the key -----------------------------------------------------------


class Echo(LocalHTTPServer):
    """Answers every request with ``status`` and a body quoting the credentials it got."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__()

    def _handler(self) -> type[JSONHandler]:
        fake = self

        class Handler(JSONHandler):
            def do_GET(self) -> None:  # noqa: N802
                sent = " ".join(
                    self.headers.get(name) or "" for name in ("Authorization", "x-api-key")
                )
                body = {"error": {"message": f"Incorrect API key provided: {sent}"}}
                self.send_json(fake.status, body, headers={"Retry-After": "1"})

        return Handler


OPENROUTER_KEY = "sk-or-v1-" + "ab" * 32


@pytest.mark.django_db
@pytest.mark.parametrize("status", [400, 401, 404, 429, 500])
@pytest.mark.parametrize(
    ("provider", "secret"),
    [("openai", OPENAI_ADMIN), ("anthropic", ANTHROPIC_ADMIN), ("openrouter", OPENROUTER_KEY)],
)
def test_a_provider_echoing_the_key_leaves_it_in_no_error_log_or_state(
    settings, caplog, alice, provider, secret, status
):
    server = Echo(status).start()
    settings.OPENAI_BASE_URL = server.origin + "/v1"
    settings.ANTHROPIC_BASE_URL = server.origin
    settings.OPENROUTER_BASE_URL = server.origin + "/api/v1"
    key = ApiKeyFactory(owner=alice, provider=provider, secret=secret)
    caplog.set_level("DEBUG")
    try:
        try:
            result = usage_fetch_for_key(api_key_id=key.pk)
            told = result.detail
        except ProviderError as exc:
            told = exc.message
    finally:
        server.stop()

    key.refresh_from_db()
    state = UsageFetchState.objects.get(api_key=key)
    for text in (told, state.last_error, key.status_detail, caplog.text):
        assert secret not in text
        assert secret[-12:] not in text


# --- Gigantic pages -------------------------------------------------------------------------


@pytest.mark.parametrize("answer", [huge(8 * 1024 * 1024), compressed(64 * 1024 * 1024)])
def test_a_gigantic_or_inflating_page_is_refused_before_it_is_read_whole(
    settings, monkeypatch, answer
):
    monkeypatch.setattr(providers, "MAX_BODY_BYTES", 1024 * 1024)
    server = HostileServer(answer).start()
    settings.OPENROUTER_BASE_URL = server.base_url
    try:
        with pytest.raises(ProviderError, match="larger than we read"):
            openrouter.fetch_openrouter_usage(
                secret=OPENROUTER_KEY, start=DAY, end=DAY + timedelta(days=1), api_key_id=1
            )
    finally:
        server.stop()
    if not answer.headers:  # (a compressed one is small: sent whole before the refusal)
        assert server.sent < server.total
