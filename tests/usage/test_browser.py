"""In Chromium: the Usage page's chart draws the owner's usage, a filter and the metric
switch change it, the CSV downloads; screenshots at desktop and phone widths."""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser_helpers import login, serious_accessibility_failures
from tests.conftest import DESKTOP, PHONE
from tests.keys.factories import ApiKeyFactory, ProjectFactory
from tests.usage.factories import bucket_row
from usage.models import UsageFetchState
from usage.services import usage_buckets_upsert

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The chart as drawn: Chart.js's own registry of the canvas's chart.
DATASETS = """() => Chart.getChart("usage-chart").data.datasets.map(
  (d) => ({label: d.label, data: d.data, color: d.backgroundColor}))"""


def _today() -> datetime:
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


@pytest.fixture
def alices_week(alice):
    """A week of usage: two keys in two projects, three models, and an admin key."""
    web = ApiKeyFactory(owner=alice, name="web", project=ProjectFactory(owner=alice, name="Web"))
    batch = ApiKeyFactory(
        owner=alice, name="batch", project=ProjectFactory(owner=alice, name="Batch")
    )
    admin = ApiKeyFactory(owner=alice, name="org admin", secret="sk-admin-" + "b" * 24)
    UsageFetchState.objects.create(
        api_key=admin, last_fetched_at=datetime.now(UTC) - timedelta(minutes=7), last_status="ok"
    )
    rows = []
    for day in range(7):
        start = _today() - timedelta(days=6 - day)
        rows += [
            bucket_row(
                bucket_start=start,
                api_key_id=web.pk,
                external_key_id="k_web",
                cost_micros=(day + 1) * 400_000,
                input_tokens=20_000 + day * 3_000,
                output_tokens=6_000,
                requests=40 + day,
            ),
            bucket_row(
                bucket_start=start + timedelta(hours=9),
                api_key_id=batch.pk,
                external_key_id="k_batch",
                model="gpt-4.1",
                cost_micros=900_000 + day * 50_000,
                input_tokens=12_000,
                output_tokens=4_000,
                requests=12,
            ),
            bucket_row(
                bucket_start=start + timedelta(hours=14),
                api_key_id=web.pk,
                external_key_id="k_web",
                model="o4-mini",
                cost_micros=250_000 if day % 2 else 0,
                input_tokens=3_000,
                output_tokens=9_000,
                requests=5,
            ),
        ]
    usage_buckets_upsert(owner=alice, source="openai_admin", rows=rows)
    return {"web": web, "batch": batch, "cost": sum(row.cost_micros for row in rows)}


def test_the_chart_draws_filters_switches_metric_and_the_csv_downloads(
    page, screenshot, alice, alices_week
):
    login(page, alice.email)
    start = (_today() - timedelta(days=6)).date().isoformat()
    page.goto(f"/dashboard/usage/?start={start}&end={_today().date().isoformat()}")
    page.locator("#usage-chart").wait_for()

    drawn = page.evaluate(DATASETS)
    assert [d["label"] for d in drawn] == [
        "gpt-4o-mini-2024-07-18 · OpenAI",
        "gpt-4.1 · OpenAI",
        "o4-mini · OpenAI",
    ]
    assert all(len(d["data"]) == 7 for d in drawn)
    assert round(sum(sum(d["data"]) for d in drawn), 6) == alices_week["cost"] / 1_000_000
    assert len({d["color"] for d in drawn}) == 3
    label = page.locator("#usage-chart").get_attribute("aria-label")
    assert label.startswith("Daily cost from") and "across 3 models" in label
    assert serious_accessibility_failures(page) == []
    screenshot(page, "usage-page")

    # The metric switch redraws the same chart with tokens, kept in the URL.
    page.locator("label[for=metric-tokens]").click()
    page.wait_for_url("**metric=tokens**")
    tokens = page.evaluate(DATASETS)
    assert tokens[0]["data"][0] == 26_000
    assert "Daily tokens" in page.locator("#usage-chart").get_attribute("aria-label")
    assert "metric=tokens" in page.get_by_role("link", name="Last month").get_attribute("href")

    # A filter (the batch key) changes the chart: one model left, batch's figures.
    page.get_by_label("Key", exact=True).select_option(label="batch (OpenAI)")
    page.get_by_role("button", name="Show usage").click()
    page.wait_for_url(f"**key_id={alices_week['batch'].pk}**")
    filtered = page.evaluate(DATASETS)
    assert [d["label"] for d in filtered] == ["gpt-4.1 · OpenAI"]
    assert filtered[0]["data"] == [16_000] * 7  # the metric stayed "tokens"
    assert page.locator("[data-total=cost]").inner_text() == "$7.35"

    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert {row["model"] for row in rows} == {"gpt-4.1"}
    assert sum(Decimal(row["cost_usd"]) for row in rows) == Decimal("7.35")
    assert download.value.suggested_filename.startswith("kay-usage-")


@pytest.mark.parametrize("width", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_page_fits_the_screen_and_passes_axe(page, alice, alices_week, width):
    login(page, alice.email)
    page.set_viewport_size(width)
    page.goto("/dashboard/usage/?start=" + (_today() - timedelta(days=6)).date().isoformat())
    page.locator("#usage-chart").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= width["width"]
    assert serious_accessibility_failures(page) == []
    page.get_by_text("The chart's figures as a table").click()
    assert page.locator(".chart-table tbody tr").count() == 7
    assert serious_accessibility_failures(page) == []


def test_an_empty_page_says_how_to_get_usage(page, screenshot, alice):
    login(page, alice.email)
    page.goto("/dashboard/usage/")
    expect(page.get_by_role("heading", name="No usage yet")).to_be_visible()
    screenshot(page, "usage-empty")
    page.get_by_role("link", name="Add a key").first.click()
    page.wait_for_url("**/dashboard/keys/new/")


def test_the_chart_draws_under_the_content_security_policy(
    chromium, live_server, alice, alices_week
):
    """The shared ``page`` fixture bypasses CSP: here the policy applies, and neither
    Chart.js nor usage.js may trip it."""
    context = chromium.new_context(base_url=live_server.url, viewport=DESKTOP)
    context.set_default_timeout(10_000)
    page = context.new_page()
    seen: list[str] = []
    page.expose_function("kayCspViolation", lambda text: seen.append(text))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', (e) => "
        "window.kayCspViolation(`${e.violatedDirective} ${e.blockedURI}`));"
    )
    page.on("pageerror", lambda error: seen.append(f"script error: {error}"))
    try:
        login(page, alice.email)
        page.goto("/dashboard/usage/?start=" + (_today() - timedelta(days=6)).date().isoformat())
        page.locator("#usage-chart").wait_for()
        assert len(page.evaluate(DATASETS)) == 3
        page.locator("label[for=metric-requests]").click()
        page.wait_for_url("**metric=requests**")
        assert seen == []
    finally:
        context.close()
