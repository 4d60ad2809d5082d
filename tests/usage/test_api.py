"""GET /api/usage and /api/usage.csv: the Usage page's figures for the CLI, the caller's
only, with a JSON error naming the bad filter."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from rest_framework.test import APIClient

from accounts.tokens import api_token_create
from tests.helpers.queries import assert_flat_queries
from tests.keys.factories import ApiKeyFactory, ProjectFactory
from tests.usage.factories import START, BudgetFactory, bucket_row
from usage.services import usage_buckets_upsert

DAY = START.date()  # 2026-03-02
PERIOD = {"start": "2026-03-01", "end": "2026-03-02"}


def store(owner, *rows):
    usage_buckets_upsert(owner=owner, source="openai_admin", rows=list(rows))


@pytest.fixture
def alices_usage(alice):
    web = ApiKeyFactory(owner=alice, name="web", project=ProjectFactory(owner=alice, name="Web"))
    store(
        alice,
        bucket_row(api_key_id=web.pk, external_key_id="k_web", cost_micros=12_345_678),
        bucket_row(
            api_key_id=web.pk,
            external_key_id="k_web",
            model="gpt-4.1",
            bucket_start=START + timedelta(hours=5),
            cost_micros=5,
        ),
        bucket_row(external_key_id="k_unknown", cost_micros=1_000_000),
        bucket_row(bucket_start=START - timedelta(days=3), cost_micros=2_000_000),
    )
    return web


def figures(cost_usd, requests, input_tokens=1000, output_tokens=500, cached_tokens=200):
    return {
        "cost_usd": cost_usd,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cached_tokens": cached_tokens,
        "requests": requests,
    }


def test_it_returns_totals_series_and_breakdowns_with_costs_as_decimal_strings(
    alice, alice_api, alices_usage
):
    web = alices_usage
    response = alice_api.get("/api/usage", PERIOD)
    assert response.status_code == 200
    body = response.json()
    assert body["period"] == {"start": "2026-03-01", "end": "2026-03-02", "granularity": "day"}
    assert body["totals"] == figures("13.345683", 12, 3000, 1500, 600)
    assert body["previous"] == figures("2.000000", 4)
    assert body["series"] == [
        {"start": "2026-03-02T00:00:00Z", "provider": "openai", "model": "gpt-4.1"}
        | figures("0.000005", 4),
        {"start": "2026-03-02T00:00:00Z", "provider": "openai", "model": "gpt-4o-mini-2024-07-18"}
        | figures("13.345678", 8, 2000, 1000, 400),
    ]
    assert [(m["model"], m["cost_usd"]) for m in body["by_model"]] == [
        ("gpt-4o-mini-2024-07-18", "13.345678"),
        ("gpt-4.1", "0.000005"),
    ]
    assert body["by_provider"] == [
        {"provider": "openai"} | figures("13.345683", 12, 3000, 1500, 600)
    ]
    assert body["by_key"] == [
        {"key_id": web.pk, "name": "web", "provider": web.provider, "masked_key": web.masked_key}
        | figures("12.345683", 8, 2000, 1000, 400),
        {"key_id": None, "name": "", "provider": "", "masked_key": ""} | figures("1.000000", 4),
    ]
    assert [(p["project_id"], p["name"], p["cost_usd"]) for p in body["by_project"]] == [
        (web.project_id, "Web", "12.345683"),
        (None, "", "1.000000"),
    ]
    assert body["budgets"] == []


def test_hourly_series_points_start_at_their_hour(alice_api, alices_usage):
    body = alice_api.get("/api/usage", {**PERIOD, "granularity": "hour"}).json()
    assert [(p["start"], p["model"]) for p in body["series"]] == [
        ("2026-03-02T00:00:00Z", "gpt-4o-mini-2024-07-18"),
        ("2026-03-02T05:00:00Z", "gpt-4.1"),
    ]


def test_filters_narrow_the_figures(alice_api, alices_usage):
    web = alices_usage
    by_key = alice_api.get("/api/usage", {**PERIOD, "key_id": web.pk}).json()
    assert by_key["totals"]["cost_usd"] == "12.345683"
    by_model = alice_api.get("/api/usage", {**PERIOD, "model": "gpt-4.1"}).json()
    assert by_model["totals"]["cost_usd"] == "0.000005"
    by_project = alice_api.get("/api/usage", {**PERIOD, "project_id": web.project_id}).json()
    assert by_project["totals"]["requests"] == 8
    none = alice_api.get("/api/usage", {**PERIOD, "provider": "anthropic"}).json()
    assert none["totals"] == figures("0.000000", 0, 0, 0, 0) and none["series"] == []


def test_without_dates_it_covers_this_month_so_far(alice_api, alices_usage):
    with time_machine.travel(datetime(2026, 3, 9, 15, tzinfo=UTC), tick=False):
        body = alice_api.get("/api/usage").json()
    assert body["period"] == {"start": "2026-03-01", "end": "2026-03-09", "granularity": "day"}
    assert body["totals"]["cost_usd"] == "13.345683"


def test_the_budgets_of_the_month_come_with_the_usage(alice, alice_api, alices_usage):
    budget = BudgetFactory(
        owner=alice, project=alices_usage.project, monthly_limit_micros=15_000_000
    )
    with time_machine.travel(datetime(2026, 3, 9, 15, tzinfo=UTC), tick=False):
        body = alice_api.get("/api/usage").json()
    assert body["budgets"] == [
        {
            "id": budget.pk,
            "scope": "project",
            "name": "Web",
            "project_id": alices_usage.project_id,
            "key_id": None,
            "month": "2026-03-01",
            "monthly_limit_usd": "15.000000",
            "spent_usd": "12.345683",
            "percent": 82,
            "level": "warning",
        }
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2026-02-30"}, "start"),
        ({"start": "03/01/2026"}, "start"),
        ({"end": "yesterday"}, "end"),
        ({"start": "2026-03-05", "end": "2026-03-01"}, "end"),
        ({"start": "2025-01-01", "end": "2026-03-01"}, "end"),
        ({"start": "2026-01-01", "end": "2026-03-01", "granularity": "hour"}, "end"),
        ({"granularity": "week"}, "granularity"),
        ({"key_id": "abc"}, "key_id"),
        ({"project_id": "-1"}, "project_id"),
        ({"key_id": "99999999999999999999"}, "key_id"),
        # Days whose period before (or hour after) leaves Python's dates: a 500 once.
        ({"start": "0001-01-01"}, "start"),
        ({"end": "0001-01-01"}, "end"),
        ({"end": "9999-12-31", "granularity": "hour"}, "end"),
        ({"start": "9999-12-31"}, "start"),
    ],
)
@pytest.mark.parametrize("url", ["/api/usage", "/api/usage.csv"])
def test_a_bad_filter_is_a_400_naming_the_field(alice_api, url, params, field):
    response = alice_api.get(url, params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["fields"]) == [field]


def test_the_csv_has_the_series_and_downloads_as_a_file(alice_api, alices_usage):
    response = alice_api.get("/api/usage.csv", PERIOD)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="kay-usage-2026-03-01-to-2026-03-02-day.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["start"], r["model"], r["cost_usd"]) for r in rows] == [
        ("2026-03-02", "gpt-4.1", "0.000005"),
        ("2026-03-02", "gpt-4o-mini-2024-07-18", "13.345678"),
    ]
    json_series = alice_api.get("/api/usage", PERIOD).json()["series"]
    assert [r["cost_usd"] for r in rows] == [p["cost_usd"] for p in json_series]


def test_bob_sees_none_of_alices_usage_or_budgets(alice, bob, bob_api, alices_usage):
    web = alices_usage
    BudgetFactory(owner=alice, project=web.project)
    mine = bob_api.get("/api/usage", PERIOD).json()
    assert mine["totals"]["requests"] == 0
    assert mine["series"] == mine["by_key"] == mine["by_project"] == mine["budgets"] == []
    for filters in ({"key_id": web.pk}, {"project_id": web.project_id}):
        stolen = bob_api.get("/api/usage", {**PERIOD, **filters}).json()
        assert stolen["totals"]["requests"] == 0 and stolen["by_key"] == []
        csv_text = bob_api.get("/api/usage.csv", {**PERIOD, **filters}).content.decode()
        assert csv_text.count("\n") == 1  # the header only
    assert bob_api.get("/api/usage.csv", PERIOD).content.decode().count("\n") == 1


@pytest.mark.parametrize("url", ["/api/usage", "/api/usage.csv"])
def test_it_needs_a_signed_in_caller(db, url):
    response = APIClient().get(url)
    assert response.status_code in (401, 403)
    assert "error" in response.json()


def test_a_personal_api_token_reads_usage(alice, alices_usage):
    _, token = api_token_create(user=alice, name="cli")
    client = APIClient()
    response = client.get("/api/usage", PERIOD, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert response.json()["totals"]["cost_usd"] == "13.345683"


def test_the_query_count_does_not_grow_with_keys_and_budgets(alice, alice_api):
    def add_row():
        key = ApiKeyFactory(owner=alice, project=ProjectFactory(owner=alice))
        store(alice, bucket_row(api_key_id=key.pk, external_key_id=f"k_{key.pk}"))
        BudgetFactory(owner=alice, project=key.project)

    query = "?start=2026-03-01&end=2026-03-02"
    assert_flat_queries(alice_api, f"/api/usage{query}", add_row, rows=20)
