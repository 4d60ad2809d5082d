"""In Chromium: the onboarding wizard, adding a key, seeing it masked, rotating, deleting."""

import re

import pytest
from playwright.sync_api import expect

from keys.models import ApiKey, OnboardingSession
from tests.browser_helpers import login
from tests.keys.conftest import VALID

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_onboarding_add_key_masked_rotate_delete(page, screenshot, alice, fake_providers):
    login(page, alice.email)
    page.get_by_role("link", name="Add a key").click()  # the overview's checklist
    page.wait_for_url("**/dashboard/onboarding/")
    screenshot(page, "keys-onboarding-project")

    # 1. project
    page.get_by_label("Project name").fill("Website chatbot")
    page.get_by_role("button", name="Create project").click()
    page.wait_for_selector("[data-step=keys]")

    # 2. keys: the hint follows the provider; "Check key" asks the fake provider
    page.get_by_label("Provider", exact=True).select_option("anthropic")
    page.wait_for_selector("text=An Anthropic key starts with sk-ant-")
    page.get_by_label("Name", exact=True).fill("claude")
    page.get_by_label("API key", exact=True).fill(VALID["anthropic"])
    page.get_by_role("button", name="Check key").click()
    page.wait_for_selector("#check-result >> text=Anthropic accepted this key")
    screenshot(page, "keys-onboarding-checked")
    page.get_by_role("button", name="Add key").click()
    page.wait_for_selector(".added-keys >> text=sk-a…0000")
    assert VALID["anthropic"] not in page.content()

    # Leaving and coming back resumes at the same step (the checklist now shows the
    # project and the key as done).
    page.goto("/dashboard/")
    assert page.locator("ol.steps li.done").count() == 2
    page.goto("/dashboard/onboarding/")
    page.wait_for_selector("[data-step=keys]")
    page.get_by_role("button", name="Continue").click()

    # 3. validate, 4. done
    page.wait_for_selector("[data-step=validate]")
    screenshot(page, "keys-onboarding-validate")
    page.get_by_role("button", name="Finish").click()
    page.wait_for_selector("[data-step=done]")
    assert OnboardingSession.objects.get(user=alice).completed_at is not None
    page.goto("/dashboard/")
    expect(page.get_by_text("Done").first).to_be_visible()

    # Add a second key from the keys page and see it masked in the list.
    page.goto("/dashboard/keys/")
    page.get_by_role("link", name="Add a key").click()
    page.get_by_label("Provider", exact=True).select_option("openai")
    page.get_by_label("Name", exact=True).fill("prod")
    page.get_by_label("Project", exact=True).select_option(label="Website chatbot")
    page.get_by_label("API key", exact=True).fill(VALID["openai"])
    page.get_by_role("button", name="Save key").click()
    page.wait_for_selector("text=Key saved and verified.")
    assert page.get_by_test_id("masked-key").inner_text() == "sk-p…Wx9z"
    page.get_by_role("link", name="All keys").click()
    row = page.locator("#key-table tbody tr", has_text="prod")
    assert "sk-p…Wx9z" in row.inner_text() and "Valid" in row.inner_text()
    assert VALID["openai"] not in page.content()
    screenshot(page, "keys-list")

    # Filter by provider (htmx swaps the table).
    page.get_by_label("Provider", exact=True).select_option("anthropic")
    page.wait_for_function("!document.querySelector('#key-table').innerText.includes('prod')")
    assert "claude" in page.locator("#key-table").inner_text()
    page.get_by_label("Provider", exact=True).select_option("")

    # Rotate: same record, new mask.
    page.wait_for_selector("#key-table >> text=prod")
    page.locator("#key-table").get_by_role("link", name="prod").click()
    key_id = int(re.search(r"/dashboard/keys/(\d+)/", page.url).group(1))
    new_secret = "sk-proj-RotatedInTheBrowser00000000000000R0t8"
    fake_providers.valid_keys.add(new_secret)
    page.get_by_label("New secret").fill(new_secret)
    page.get_by_role("button", name="Rotate key").click()
    page.wait_for_selector("text=Key rotated")
    assert page.get_by_test_id("masked-key").inner_text() == "sk-p…R0t8"
    expect(page.locator("table.events-table", has_text="Rotated")).to_be_visible()
    screenshot(page, "keys-detail")
    assert ApiKey.objects.get(pk=key_id).get_secret() == new_secret

    # Delete, with confirmation.
    page.get_by_role("link", name="Delete this key…").click()
    page.wait_for_selector("text=cannot be undone")
    screenshot(page, "keys-delete-confirm")
    page.get_by_role("button", name="Delete key").click()
    page.wait_for_url("**/dashboard/keys/")
    assert not ApiKey.objects.filter(pk=key_id).exists()
    expect(page.get_by_text("Key “prod” deleted.")).to_be_visible()


def test_a_key_in_the_wrong_format_is_an_error_on_the_key_field(page, screenshot, alice):
    login(page, alice.email)
    page.goto("/dashboard/keys/new/")
    page.get_by_label("Provider", exact=True).select_option("anthropic")
    page.wait_for_selector("text=An Anthropic key starts with sk-ant-")
    page.get_by_label("Name", exact=True).fill("claude")
    page.get_by_label("API key", exact=True).fill("hello")
    page.get_by_role("button", name="Check key").click()
    page.wait_for_selector("#check-result .alert-error >> text=This is not an Anthropic key")

    page.get_by_label("API key", exact=True).fill("hello")
    page.get_by_role("button", name="Save key").click()
    error = page.locator("#id_key_error")
    error.wait_for()
    assert error.inner_text().startswith("This is not an Anthropic key: an Anthropic key starts")
    assert page.locator(".alert-success, .alert-warning").count() == 0
    described = page.get_by_label("API key", exact=True).get_attribute("aria-describedby")
    assert described == "id_key_helptext id_key_error"
    assert all(page.locator(f"#{name}").count() == 1 for name in described.split())
    screenshot(page, "keys-new-format-error")
    assert not ApiKey.objects.exists()
