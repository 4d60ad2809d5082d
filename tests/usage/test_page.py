"""The Usage page (/dashboard/usage/), its CSV and "Fetch now": the owner's figures only,
filters kept in the URL, the CSV equal to what the page shows."""

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from keys.models import ApiKey
from tests.helpers.queries import assert_flat_queries
from tests.keys.factories import ApiKeyFactory, ProjectFactory, secret_for
from tests.usage.factories import bucket_row, two_keys_usage
from usage.models import UsageFetchState
from usage.services import usage_buckets_upsert
from usage.tasks import fetch_usage_for_key

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # START (2 March) is in this month
PAGE = "/dashboard/usage/"
CSV = "/dashboard/usage.csv"
DAY = "start=2026-03-02&end=2026-03-02"


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def admin_key(owner, n=1, **fields):
    key = ApiKeyFactory(owner=owner, secret=f"sk-admin-{'a' * 20}{n:04d}", **fields)
    assert key.kind == ApiKey.Kind.ADMIN
    return key


@pytest.fixture
def alices_usage(alice):
    return two_keys_usage(alice)


def html_of(response) -> str:
    return response.content.decode()


def stat(html: str, name: str) -> str:
    return re.search(rf'data-total="{name}">([^<]*)<', html).group(1)


def chart_of(html: str) -> dict:
    found = re.search(r'<script id="usage-chart-data" type="application/json">(.*?)</script>', html)
    return json.loads(found.group(1))


def csv_rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


# --- The page ---------------------------------------------------------------------------


def test_it_shows_totals_against_the_previous_period_and_the_month_projection(
    alice_browser, alices_usage
):
    html = html_of(alice_browser.get(f"{PAGE}?{DAY}"))
    assert stat(html, "cost") == "$4.50"
    assert stat(html, "tokens") == f"{2050 + 1005:,}"
    assert stat(html, "requests") == "9"
    # 1 March cost $2.00: $4.50 is 125 % more.
    assert "up 125 %" in html
    # This month so far: $6.50 over 10 of 31 days → $20.15.
    assert stat(html, "projection") == "$20.15"
    assert "10 days elapsed (today included) × 31 days in March" in html


def test_it_charts_each_model_per_day_with_every_day_of_the_period(alice_browser, alices_usage):
    html = html_of(alice_browser.get(f"{PAGE}?start=2026-03-01&end=2026-03-03"))
    chart = chart_of(html)
    assert chart["labels"] == [
        "2026-03-01T00:00:00Z",
        "2026-03-02T00:00:00Z",
        "2026-03-03T00:00:00Z",
    ]
    layers = {layer["label"]: layer for layer in chart["series"]}
    mini = layers["gpt-4o-mini-2024-07-18 · OpenAI"]
    assert mini["cost"] == [2.0, 3.5, 0.0]
    assert mini["requests"] == [4, 8, 0]
    assert layers["gpt-4.1 · OpenAI"]["tokens"] == [0, 55, 0]
    assert 'role="img" aria-label="Daily cost from 1 Mar 2026 to 3 Mar 2026' in html


def test_hourly_view_has_a_point_per_hour(alice_browser, alices_usage):
    chart = chart_of(html_of(alice_browser.get(f"{PAGE}?{DAY}&granularity=hour")))
    assert len(chart["labels"]) == 24
    assert chart["labels"][5] == "2026-03-02T05:00:00Z"
    assert chart["series"][1]["cost"][5] == 1.0


def test_breakdowns_by_project_key_provider_and_model_link_to_their_filter(
    alice_browser, alices_usage
):
    web = alices_usage["web"]
    html = html_of(alice_browser.get(f"{PAGE}?{DAY}"))
    for table in ("model", "provider", "key", "project"):
        assert f'data-breakdown="{table}"' in html
    assert f"key_id={web.pk}" in html and f"project_id={web.project_id}" in html
    assert ">Batch</a>" in html and ">web</a>" in html
    assert "89 %" in html  # web's $4.00 of $4.50


def test_filters_in_the_url_change_the_figures(alice_browser, alices_usage):
    batch = alices_usage["batch"]
    html = html_of(alice_browser.get(f"{PAGE}?{DAY}&key_id={batch.pk}"))
    assert stat(html, "cost") == "$0.50"
    html = html_of(alice_browser.get(f"{PAGE}?{DAY}&project_id={alices_usage['web'].project_id}"))
    assert stat(html, "cost") == "$4.00"
    html = html_of(alice_browser.get(f"{PAGE}?{DAY}&model=gpt-4.1"))
    assert stat(html, "cost") == "$1.00"
    html = html_of(alice_browser.get(f"{PAGE}?{DAY}&provider=anthropic"))
    assert stat(html, "cost") == "$0.00"
    assert "No usage in this period" in html


def test_quick_ranges_keep_the_other_filters(alice_browser, alices_usage):
    batch = alices_usage["batch"]
    html = html_of(alice_browser.get(f"{PAGE}?key_id={batch.pk}"))
    last_month = re.search(r'href="([^"]*)"[^>]*>Last month<', html).group(1)
    assert "start=2026-02-01" in last_month and "end=2026-02-28" in last_month
    assert f"key_id={batch.pk}" in last_month
    # The default period is this month so far, marked as the current quick range.
    assert re.search(r'aria-current="true">This month<', html)


def test_bad_filters_are_refused_with_a_message(alice_browser, alices_usage):
    response = alice_browser.get(f"{PAGE}?start=2026-03-05&end=2026-03-01")
    assert response.status_code == 400
    html = html_of(response)
    assert "Must not be before start." in html and 'aria-invalid="true"' in html
    assert 'data-total="cost"' not in html
    assert alice_browser.get(f"{PAGE}?key_id=abc").status_code == 400


def test_empty_page_says_how_to_get_usage(alice_browser):
    html = html_of(alice_browser.get(PAGE))
    assert "No usage yet" in html
    assert "Add an OpenAI admin key (<code>sk-admin-…</code>), an Anthropic admin key" in html
    assert "usage appears within 15 minutes" in html
    assert 'href="/dashboard/keys/new/"' in html
    assert "usage-chart-data" not in html


def test_a_usage_key_without_usage_yet_says_it_waits_for_its_first_fetch(alice_browser, alice):
    key = admin_key(alice, name="org admin")
    html = html_of(alice_browser.get(PAGE))
    assert "No usage in this period" in html and "Fetch now" in html
    assert f'action="/dashboard/usage/keys/{key.pk}/fetch/"' in html
    assert "Not fetched yet" in html and "not yet" in html


def test_each_usage_key_shows_when_it_was_fetched_and_its_last_error(alice_browser, alice):
    key = admin_key(alice, name="org admin")
    ApiKeyFactory(owner=alice, name="chat key")  # an API key: no usage of its own to fetch
    openrouter = ApiKeyFactory(owner=alice, provider="openrouter", name="router")
    UsageFetchState.objects.create(
        api_key=key,
        last_fetched_at=NOW - timedelta(hours=3),
        last_status="invalid_key",
        last_error="OpenAI rejected this admin key (HTTP 401): rotate it or add another.",
    )
    html = html_of(alice_browser.get(PAGE))
    assert "3\xa0hours ago" in html
    assert "Key refused by the provider" in html
    assert "OpenAI rejected this admin key (HTTP 401)" in html
    assert f"/dashboard/usage/keys/{openrouter.pk}/fetch/" in html
    assert "chat key</a><br>" not in html


def test_another_users_key_or_project_as_a_filter_shows_nothing_of_theirs(
    alice_browser, alice, bob, alices_usage
):
    bobs = ApiKeyFactory(owner=bob, name="bobs-key", project=ProjectFactory(owner=bob))
    usage_buckets_upsert(
        owner=bob,
        source="openai_admin",
        rows=[bucket_row(api_key_id=bobs.pk, model="bobs-model", cost_micros=9_000_000)],
    )
    for query in (f"key_id={bobs.pk}", f"project_id={bobs.project_id}"):
        response = alice_browser.get(f"{PAGE}?{DAY}&{query}")
        html = html_of(response)
        assert response.status_code == 200
        assert stat(html, "cost") == "$0.00"
        assert "bobs-model" not in html and "bobs-key" not in html
        assert csv_rows(alice_browser.get(f"{CSV}?{DAY}&{query}")) == []


def test_bob_sees_none_of_alices_usage(client, bob, alices_usage):
    client.force_login(bob)
    html = html_of(client.get(f"{PAGE}?{DAY}"))
    assert "No usage yet" in html
    assert "gpt-4o-mini" not in html and "Batch" not in html and "web" not in html
    assert csv_rows(client.get(f"{CSV}?{DAY}")) == []


def test_signed_out_visitors_are_sent_to_sign_in(client):
    for url in (PAGE, CSV):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_page_reads_a_fixed_number_of_queries_with_1_or_50_keys(alice_browser, alice):
    made = iter(range(1, 100))

    def add_row():
        n = next(made)
        key = admin_key(alice, n, project=ProjectFactory(owner=alice))
        UsageFetchState.objects.create(api_key=key, last_fetched_at=NOW, last_status="ok")
        usage_buckets_upsert(
            owner=alice,
            source="openai_admin",
            rows=[bucket_row(api_key_id=key.pk, external_key_id=f"k{n}", model=f"model-{n}")],
        )

    measured = assert_flat_queries(alice_browser, f"{PAGE}?{DAY}", add_row, at_most=20)
    assert html_of(measured.response).count(">Fetch now<span") == 50


# --- CSV --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query", [DAY, f"{DAY}&granularity=hour", "start=2026-03-01&end=2026-03-10&model=gpt-4.1"]
)
def test_the_csv_is_exactly_what_the_page_shows(alice_browser, alices_usage, query):
    html = html_of(alice_browser.get(f"{PAGE}?{query}"))
    assert f'href="{CSV}?{query.replace("&", "&amp;")}"' in html
    response = alice_browser.get(f"{CSV}?{query}")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="kay-usage-')
    assert response["Cache-Control"] == "no-store"  # spend figures, in no cache
    rows = csv_rows(response)
    assert rows
    cost = sum(Decimal(row["cost_usd"]) for row in rows)
    assert f"${cost:.2f}" == stat(html, "cost")
    assert f"{sum(int(row['requests']) for row in rows):,}" == stat(html, "requests")
    # Every CSV row is a point of the chart, with the same value.
    chart = chart_of(html)
    for row in rows:
        start = row["start"] if "T" in row["start"] else f"{row['start']}T00:00:00Z"
        layer = next(s for s in chart["series"] if s["label"].startswith(f"{row['model']} · "))
        assert layer["requests"][chart["labels"].index(start)] == int(row["requests"])


def test_the_csv_refuses_bad_filters(alice_browser):
    response = alice_browser.get(f"{CSV}?granularity=minute")
    assert response.status_code == 400
    assert "Choose day or hour." in response.content.decode()


@pytest.mark.parametrize(
    "query",
    [
        "start=0001-01-01&end=0001-01-01",
        "start=0001-01-01&end=0001-01-02&granularity=hour",
        "end=9999-12-31&granularity=hour",
        "end=9999-12-31",
    ],
)
def test_days_out_of_range_are_refused_not_a_server_error(alice_browser, query):
    for url in (PAGE, CSV):
        response = alice_browser.get(f"{url}?{query}")
        assert response.status_code == 400
        assert "Enter a date from 2000-01-01 to 2099-12-31." in response.content.decode()


# --- Fetch now --------------------------------------------------------------------------


def fetch_now(client, key, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as queued:
        response = client.post(
            f"/dashboard/usage/keys/{key.pk}/fetch/", {"next": PAGE}, follow=True
        )
    return response, queued


def test_fetch_now_queues_a_fetch_of_the_key_after_commit(
    alice_browser, alice, django_capture_on_commit_callbacks
):
    key = admin_key(alice)
    response, queued = fetch_now(alice_browser, key, django_capture_on_commit_callbacks)
    assert response.redirect_chain[-1] == (PAGE, 302)
    assert "Fetching usage with" in html_of(
        response
    ) and "refresh this page in a minute" in html_of(response)
    assert len(queued) == 1
    assert queued[0].func == fetch_usage_for_key.apply_async
    assert queued[0].keywords == {"args": [key.pk]}


def test_fetch_now_answers_404_for_another_users_key(
    alice_browser, bob, django_capture_on_commit_callbacks
):
    bobs = admin_key(bob)
    with django_capture_on_commit_callbacks() as queued:
        response = alice_browser.post(f"/dashboard/usage/keys/{bobs.pk}/fetch/")
    assert response.status_code == 404
    assert queued == []


def test_fetch_now_refuses_a_key_with_no_usage_to_fetch(
    alice_browser, alice, django_capture_on_commit_callbacks
):
    chat = ApiKeyFactory(owner=alice, secret=secret_for("openai", 7), name="chat")
    response, queued = fetch_now(alice_browser, chat, django_capture_on_commit_callbacks)
    assert "“chat” has no usage to fetch" in html_of(response)
    assert queued == []


def test_fetch_now_is_rate_limited_per_key(
    alice_browser, alice, settings, django_capture_on_commit_callbacks, one_rate_window
):
    settings.USAGE_FETCH_NOW_RATE = "2/hour"
    key, other = admin_key(alice, 1), admin_key(alice, 2)
    for _ in range(2):
        _, queued = fetch_now(alice_browser, key, django_capture_on_commit_callbacks)
        assert len(queued) == 1
    response, queued = fetch_now(alice_browser, key, django_capture_on_commit_callbacks)
    assert "Too many usage fetch requests" in html_of(response)
    assert queued == []
    # Another key of hers has its own allowance.
    _, queued = fetch_now(alice_browser, other, django_capture_on_commit_callbacks)
    assert len(queued) == 1


def test_fetch_now_only_answers_post(alice_browser, alice):
    key = admin_key(alice)
    assert alice_browser.get(f"/dashboard/usage/keys/{key.pk}/fetch/").status_code == 405


# --- How figures are written --------------------------------------------------------------


def test_amounts_under_a_cent_keep_four_decimals_and_large_ones_their_commas():
    from usage.templatetags.usage_figures import dollars

    assert dollars(4_200) == "$0.0042"
    assert dollars(0) == "$0.00"
    assert dollars(1_234_567_890) == "$1,234.57"


@pytest.mark.parametrize(
    ("current", "previous", "direction", "percent"),
    [(150, 100, "up", 50), (25, 100, "down", 75), (100, 100, "flat", 0), (5, 0, "new", 0)],
)
def test_changes_against_the_previous_period(current, previous, direction, percent):
    from usage.views import Change

    assert Change.of(current, previous) == Change(direction, percent)


def test_a_fall_against_the_previous_period_is_shown_down(alice_browser, alices_usage):
    # 2 March ($4.50) against 1 March ($2.00), seen from 3 March: nothing on 3 March.
    html = html_of(alice_browser.get(f"{PAGE}?start=2026-03-03&end=2026-03-03"))
    assert "down 100 %" in html
