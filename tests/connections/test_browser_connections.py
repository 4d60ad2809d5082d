"""In Chromium: connect Jira from the Connections page against the fake, see it, disconnect."""

import httpx
import pytest
from playwright.sync_api import expect

from connections.models import Connection
from tests.browser_helpers import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_connect_jira_from_the_page_then_disconnect(
    page, screenshot, live_server, oauth, settings, alice
):
    settings.ATLASSIAN_CALLBACK_URL = f"{live_server.url}/connections/oauth/callback"
    login(page, alice.email)
    page.get_by_role("link", name="Connections").first.click()
    page.wait_for_url("**/dashboard/connections/")
    expect(page.get_by_role("heading", name="Connections", exact=True)).to_be_visible()
    screenshot(page, "connections-empty")

    page.get_by_role("button", name="Connect Jira").click()  # → fake consent → callback
    page.wait_for_url("**/dashboard/connections/")
    expect(page.get_by_text("Connected Jira.")).to_be_visible()
    jira = page.locator('[data-service="jira"]')
    assert jira.locator(".badge-ok").inner_text() == "Connected"
    expect(jira.get_by_role("link", name="awesome-jira")).to_be_visible()
    expect(jira.get_by_role("link", name="super-product")).to_be_visible()
    assert Connection.objects.get(user=alice).service == "jira"
    screenshot(page, "connections-jira-connected")

    jira.get_by_role("button", name="Disconnect Jira").click()
    page.wait_for_url("**/dashboard/connections/")
    expect(page.get_by_text("Disconnected Jira")).to_be_visible()
    assert page.locator('[data-service="jira"] .badge').inner_text() == "Not connected"
    assert not Connection.objects.filter(user=alice).exists()


def test_cli_callback_page_and_device_approval(
    page, screenshot, live_server, oauth, settings, alice
):
    settings.ATLASSIAN_CALLBACK_URL = f"{live_server.url}/connections/oauth/callback"
    started = httpx.post(f"{live_server.url}/connections/connect?service=jira", json={}).json()
    page.goto(started["authorization_url"])
    page.wait_for_url("**/connections/oauth/confirm/**")
    expect(page.get_by_role("heading", name="Sign in your CLI?")).to_be_visible()
    assert page.get_by_test_id("user-code").inner_text() == started["user_code"]
    screenshot(page, "connections-cli-confirm")
    pending = httpx.get(f"{live_server.url}/auth/status/{started['state']}").json()
    assert pending["status"] == "pending"
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Jira connected")).to_be_visible()
    screenshot(page, "connections-callback-success")
    status = httpx.get(f"{live_server.url}/auth/status/{started['state']}").json()
    assert status["status"] == "completed" and status["token"]

    device = httpx.post(
        f"{live_server.url}/api/auth/device", json={"client_name": "kay CLI on build box"}
    ).json()
    login(page, alice.email)
    page.goto("/dashboard/device")
    page.get_by_label("Code shown by your CLI").fill(device["user_code"].lower())
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Sign in “kay CLI on build box”?")).to_be_visible()
    screenshot(page, "device-confirm")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("heading", name="Device approved")).to_be_visible()
    pair = httpx.post(
        f"{live_server.url}/api/auth/device/token", json={"device_code": device["device_code"]}
    ).json()
    assert pair["token"] and pair["refresh_token"]

    page.goto("/dashboard/tokens/")
    page.get_by_label("Token name").fill("laptop")
    page.get_by_role("button", name="Create token").click()
    assert page.locator("#new-token-value").input_value().count(".") == 2
    expect(page.get_by_role("cell", name="kay CLI on build box")).to_be_visible()
    screenshot(page, "tokens-created")


def test_security_activity_lists_what_happened(page, screenshot, live_server, alice):
    login(page, alice.email)
    page.goto("/dashboard/tokens/")
    page.get_by_label("Token name").fill("laptop")
    page.get_by_role("button", name="Create token").click()
    page.get_by_role("link", name="Security activity").click()
    page.wait_for_url("**/accounts/security/")
    expect(page.get_by_role("heading", name="Security activity")).to_be_visible()
    expect(page.get_by_text("API token created: laptop")).to_be_visible()
    screenshot(page, "account-security-activity")
