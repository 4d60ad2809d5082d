"""The Usage page's "Monthly budgets" section (set, list with spend, remove) and the
dashboard banner while a budget is at 80 % or more — the signed-in user's only."""

import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from playwright.sync_api import expect

from tests.browser_helpers import login, serious_accessibility_failures
from tests.conftest import PHONE
from tests.keys.factories import ApiKeyFactory, ProjectFactory
from tests.usage.factories import BudgetFactory, bucket_row
from usage.models import Budget
from usage.services import usage_buckets_upsert

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
PAGE = "/dashboard/usage/"
SAVE = "/dashboard/usage/budgets/"


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def web(alice):
    return ApiKeyFactory(owner=alice, name="web", project=ProjectFactory(owner=alice, name="Web"))


def spend(owner, key, micros):
    usage_buckets_upsert(
        owner=owner,
        source="openai_admin",
        rows=[bucket_row(api_key_id=key.pk, external_key_id=f"k_{key.pk}", cost_micros=micros)],
    )


def budgets_section(response) -> str:
    html = response.content.decode()
    match = re.search(r'<section class="card budgets" id="budgets".*?</section>', html, re.S)
    assert match, "no budgets section"
    return match.group(0)


def test_the_section_says_what_a_budget_does_when_there_is_none(alice_browser, web):
    section = budgets_section(alice_browser.get(PAGE))
    assert "No budgets yet" in section
    assert f'<option value="project:{web.project_id}">Web</option>' in section
    assert f'value="key:{web.pk}"' in section


def test_the_section_shows_this_months_spend_against_each_budget(alice, alice_browser, web):
    spend(alice, web, 42_000_000)
    budget = BudgetFactory(owner=alice, project=web.project)
    section = budgets_section(alice_browser.get(PAGE))
    assert "$42.00 of $50.00 (84 %)" in section
    assert "Over 80 %" in section
    assert '<progress max="100" value="84"' in section
    assert f'action="/dashboard/usage/budgets/{budget.pk}/remove/"' in section


def test_a_user_with_nothing_to_budget_sees_no_section(charlie, client):
    client.force_login(charlie)
    assert 'id="budgets"' not in client.get(PAGE).content.decode()


def test_saving_a_budget_sets_it_and_returns_to_the_section(alice, alice_browser, web):
    response = alice_browser.post(
        SAVE, {"target": f"project:{web.project_id}", "monthly_limit": "25.50", "next": PAGE}
    )
    assert response.status_code == 302 and response["Location"] == f"{PAGE}#budgets"
    budget = Budget.objects.get()
    assert (budget.owner, budget.project, budget.monthly_limit_micros) == (
        alice,
        web.project,
        25_500_000,
    )
    page = alice_browser.get(PAGE).content.decode()
    assert "Budget saved: $25.50 a month for Web." in page
    # Again for the same project: the limit changes, no second budget.
    alice_browser.post(SAVE, {"target": f"project:{web.project_id}", "monthly_limit": "30"})
    assert Budget.objects.get().monthly_limit_micros == 30_000_000


def test_a_key_can_have_its_own_budget(alice_browser, web):
    alice_browser.post(SAVE, {"target": f"key:{web.pk}", "monthly_limit": "5"})
    assert Budget.objects.get().api_key == web


@pytest.mark.parametrize(
    "data",
    [
        {"target": "", "monthly_limit": "5"},
        {"target": "project:{project}", "monthly_limit": "0"},
        {"target": "project:{project}", "monthly_limit": "abc"},
        {"target": "project:{project}", "monthly_limit": "5.555"},
        {"target": "project:{project}"},
        {"target": "team:1", "monthly_limit": "5"},
    ],
)
def test_a_bad_budget_is_not_saved_and_says_why(alice_browser, web, data):
    data = {name: value.format(project=web.project_id) for name, value in data.items()}
    response = alice_browser.post(SAVE, data, follow=True)
    assert "The budget was not saved." in response.content.decode()
    assert not Budget.objects.exists()


def test_bob_cannot_budget_alices_project_or_key(bob, client, web):
    client.force_login(bob)
    for target in (f"project:{web.project_id}", f"key:{web.pk}"):
        response = client.post(SAVE, {"target": target, "monthly_limit": "5"}, follow=True)
        page = response.content.decode()
        assert "The budget was not saved. Choose one of your projects or keys." in page
        assert target not in page  # the refusal does not repeat what was sent
    assert not Budget.objects.exists()


def test_removing_a_budget(alice, alice_browser, web):
    budget = BudgetFactory(owner=alice, project=web.project)
    response = alice_browser.post(f"/dashboard/usage/budgets/{budget.pk}/remove/", follow=True)
    assert "Budget removed." in response.content.decode()
    assert not Budget.objects.exists()


def test_bob_cannot_see_or_remove_alices_budget(alice, bob, client, web):
    spend(alice, web, 45_000_000)
    budget = BudgetFactory(owner=alice, project=web.project)
    client.force_login(bob)
    ApiKeyFactory(owner=bob)  # so bob's page has a budgets section
    assert "Web" not in budgets_section(client.get(PAGE))
    assert "monthly budget" not in client.get("/dashboard/").content.decode()
    response = client.post(f"/dashboard/usage/budgets/{budget.pk}/remove/")
    assert response.status_code == 404
    assert Budget.objects.filter(pk=budget.pk).exists()


def test_removing_needs_a_post(alice, alice_browser):
    budget = BudgetFactory(owner=alice)
    assert alice_browser.get(f"/dashboard/usage/budgets/{budget.pk}/remove/").status_code == 405
    assert alice_browser.get(SAVE).status_code == 405
    assert Budget.objects.exists()


# --- The banner ------------------------------------------------------------------------------


def test_the_dashboard_warns_at_80_percent_of_a_budget(alice, alice_browser, web):
    spend(alice, web, 42_000_000)
    BudgetFactory(owner=alice, project=web.project)
    html = alice_browser.get("/dashboard/").content.decode()
    assert "Project Web has used 84 % of its $50.00 monthly budget" in html
    assert 'href="/dashboard/usage/#budgets">see Usage</a>' in html


def test_an_exceeded_key_budget_is_in_the_banner_on_every_dashboard_page(alice, alice_browser, web):
    spend(alice, web, 12_000_000)
    BudgetFactory(owner=alice, project=None, api_key=web, monthly_limit_micros=10_000_000)
    for path in ("/dashboard/", "/dashboard/keys/", PAGE):
        html = alice_browser.get(path).content.decode()
        assert "Key web has used 120 % of its $10.00 monthly budget" in html, path


def test_no_banner_under_80_percent(alice, alice_browser, web):
    spend(alice, web, 39_000_000)
    BudgetFactory(owner=alice, project=web.project)
    assert "monthly budget —" not in alice_browser.get("/dashboard/").content.decode()


def test_last_months_spend_raises_no_banner(alice, alice_browser, web):
    spend(alice, web, 45_000_000)  # 2 March
    BudgetFactory(owner=alice, project=web.project)
    with time_machine.travel(datetime(2026, 4, 2, tzinfo=UTC), tick=False):
        assert "monthly budget —" not in alice_browser.get("/dashboard/").content.decode()


def test_the_banner_costs_a_user_without_budgets_one_query(charlie, client):
    client.force_login(charlie)
    with CaptureQueriesContext(connection) as captured:
        client.get("/dashboard/")
    budget_queries = [q["sql"] for q in captured.captured_queries if '"usage_budget"' in q["sql"]]
    assert len(budget_queries) == 1
    assert not any('"usage_usagedaily"' in q["sql"] for q in captured.captured_queries)


# --- In Chromium ---------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_setting_a_budget_in_the_browser_shows_its_bar_and_the_banner(page, screenshot, alice):
    web = ApiKeyFactory(owner=alice, name="web", project=ProjectFactory(owner=alice, name="Web"))
    ApiKeyFactory(owner=alice, name="batch")
    spend(alice, web, 42_000_000)
    login(page, alice.email)
    page.goto(PAGE)
    section = page.locator("#budgets")
    section.get_by_label("Budget for").select_option(label="Web")
    section.get_by_label("Monthly budget (USD)").fill("50")
    section.get_by_role("button", name="Save budget").click()
    page.wait_for_url(f"**{PAGE}#budgets")
    expect(page.get_by_role("status").filter(has_text="Project Web has used 84 %")).to_be_visible()
    assert section.locator("progress").get_attribute("value") == "84"
    assert serious_accessibility_failures(page) == []
    screenshot(page, "usage-budgets")
    page.set_viewport_size(PHONE)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "the page scrolls sideways on a phone"
