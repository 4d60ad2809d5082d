"""A person signs up, confirms their email, logs in and sees the dashboard — in Chromium."""

import re

import pytest
from django.core import mail
from playwright.sync_api import expect

from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sign_up_confirm_log_in_and_see_the_dashboard(page, screenshot, live_server):
    page.goto("/accounts/login/")
    screenshot(page, "accounts-login")
    page.get_by_role("link", name="sign up").click()
    page.get_by_label("Email").fill("dana@example.com")
    page.locator("#id_password1").fill(PASSWORD)
    page.locator("#id_password2").fill(PASSWORD)
    screenshot(page, "accounts-signup")
    page.get_by_role("button", name="Sign Up").click()
    page.wait_for_url("**/confirm-email/")
    screenshot(page, "accounts-verification-sent")

    link = re.search(r"https?://\S+", mail.outbox[-1].body).group(0)
    path = "/" + link.split("://", 1)[1].split("/", 1)[1]
    page.goto(live_server.url + path)
    screenshot(page, "accounts-confirm-email")
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/dashboard/")

    # Log out and back in with the new account.
    page.get_by_role("button", name="Sign out").click()
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill("dana@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url("**/dashboard/")
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
    for label in ("Keys", "Projects", "Usage", "Models", "Connections", "Billing", "API tokens"):
        expect(page.get_by_role("link", name=label).first).to_be_visible()
    screenshot(page, "dashboard-overview")


def test_the_phone_layout_folds_the_menu(page, screenshot, alice, live_server):
    from tests.browser_helpers import login

    login(page, alice.email)
    page.set_viewport_size({"width": 390, "height": 844})
    nav = page.locator("#sidebar-nav")
    expect(nav).to_be_hidden()
    page.get_by_role("button", name="Menu").click()
    expect(nav).to_be_visible()
    assert page.get_by_role("button", name="Menu").get_attribute("aria-expanded") == "true"
    page.set_viewport_size({"width": 1280, "height": 860})
    for slug in ("keys", "usage", "assistant", "billing"):
        page.goto(f"/dashboard/{slug}/")
        screenshot(page, f"dashboard-{slug}-empty")
