"""The Models page in headless Chromium: filter without reloading, then open a model."""

import re

import pytest
from django.core.management import call_command

from tests.accounts.factories import UserFactory
from tests.browser_helpers import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_filter_to_tool_capable_models_under_a_price_and_open_one(page, screenshot):
    call_command("sync_models", "--from-backup", "--no-progress", stdout=None)
    UserFactory(email="dana@example.com")
    login(page, "dana@example.com")

    page.get_by_role("link", name="Models").click()
    page.wait_for_url("**/dashboard/models/")
    count = page.locator("#result-count")
    assert re.search(r"\b414 models\b", count.inner_text())
    page.evaluate("window.kayNoReload = true")

    page.get_by_label("Tools").check()
    page.wait_for_function("!document.querySelector('#result-count').innerText.startsWith('414 ')")
    page.get_by_label("Max input $/M tokens").fill("1")
    page.get_by_label("Max input $/M tokens").dispatch_event("change")
    page.wait_for_url(re.compile(r"max_prompt_price=1"))
    page.wait_for_function(
        "document.querySelector('#result-count strong') && !document.querySelector('.htmx-request')"
    )
    shown = int(count.locator("strong").inner_text())
    assert 0 < shown < 414
    assert page.evaluate("window.kayNoReload") is True  # htmx swapped, no full reload
    for price in page.locator("td[data-label='Input $/M']").all_inner_texts():
        assert price == "Free" or float(price.strip("$").replace(",", "")) <= 1
    screenshot(page, "models-filtered")

    first = page.locator("a.catalog-name").first
    name = first.inner_text()
    first.click()
    page.wait_for_url(re.compile(r"/dashboard/models/.+/"))
    assert page.get_by_role("heading", level=1).inner_text() == name
    assert page.locator("table.catalog-endpoints tbody tr").count() >= 1
    assert "per million tokens" in page.content()
    page.get_by_role("button", name="Use for the assistant").click()
    page.get_by_text("The assistant uses this model for you.").wait_for()
    screenshot(page, "model-detail")


def test_keyboard_and_screen_reader_users_keep_their_place(page):
    call_command("sync_models", "--from-backup", "--no-progress", stdout=None)
    UserFactory(email="erin@example.com")
    login(page, "erin@example.com")
    page.goto("/dashboard/models/?provider=anthropic")

    # The result count is announced from a live region that stays in the page.
    status = page.locator("#result-status")
    assert status.get_attribute("role") == "status"
    page.get_by_label("Tools").check()
    page.wait_for_function(
        "document.querySelector('#result-status').innerText.includes('model')"
        " && !document.querySelector('.htmx-request')"
    )
    assert status.inner_text() == page.locator("#result-count").inner_text()

    # Allowing a model from the keyboard swaps the button and keeps the focus on it.
    button = page.locator("tr.catalog-row").first.get_by_role("button", name="Allow")
    button.focus()
    page.keyboard.press("Enter")
    page.locator("tr.catalog-row").first.locator("button[aria-pressed=true]").wait_for()
    focused = page.evaluate("document.activeElement.getAttribute('aria-pressed')")
    assert focused == "true"
