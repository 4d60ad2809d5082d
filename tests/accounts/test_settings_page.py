"""Account → Settings: a real page for name, sign-in, CLIs, activity and deleting."""

import pytest
from django.test import Client
from playwright.sync_api import expect

from accounts.models import User
from accounts.tokens import cli_session_start
from keys.models import ApiKey
from tests.connections.factories import ConnectionFactory
from tests.keys.factories import ApiKeyFactory, ProjectFactory

pytestmark = pytest.mark.django_db


def test_the_sidebar_links_to_the_settings_page(alice_browser):
    assert (
        'href="/accounts/settings/">Account settings'
        in alice_browser.get("/dashboard/").content.decode()
    )


def test_it_shows_sign_in_clis_and_activity(alice_browser, alice):
    session = cli_session_start(user=alice, origin="device", client_name="build box")
    html = alice_browser.get("/accounts/settings/").content.decode()
    assert "alice@example.com" in html and "Verified" in html
    assert "Change password" in html
    assert "build box" in html and str(session.public_id) in html
    assert "CLI signed in" in html  # recent security activity
    assert "Make Primary" not in html and "Remove" not in html


def test_a_passwordless_account_is_offered_to_set_one(client, alice):
    alice.set_unusable_password()
    alice.save()
    client.force_login(alice)
    html = client.get("/accounts/settings/").content.decode()
    assert "Set a password" in html and "sign in with a code" in html


def test_the_name_is_saved(alice_browser, alice):
    response = alice_browser.post("/accounts/settings/", {"action": "profile", "name": "Al"})
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.name == "Al"


def test_signing_a_cli_out_from_settings_comes_back_here(alice_browser, alice):
    session = cli_session_start(user=alice, origin="device")
    response = alice_browser.post(
        f"/dashboard/tokens/sessions/{session.public_id}/end", {"back": "settings"}
    )
    assert response["Location"] == "/accounts/settings/"
    session.refresh_from_db()
    assert session.revoked_at is not None


def test_delete_says_what_goes_and_needs_the_email_typed(alice_browser, alice, bob):
    project = ProjectFactory(owner=alice)
    ApiKeyFactory.create_batch(2, owner=alice, project=project)
    ConnectionFactory(user=alice)
    ApiKeyFactory(owner=bob)
    html = alice_browser.get("/accounts/settings/").content.decode()
    assert "API keys: 2" in html and "Projects: 1" in html and "Connections: 1" in html
    wrong = alice_browser.post(
        "/accounts/settings/", {"action": "delete", "confirm_email": "bob@example.com"}
    )
    assert wrong.status_code == 400
    assert "Does not match" in wrong.content.decode() or "exactly" in wrong.content.decode()
    assert User.objects.filter(pk=alice.pk).exists()
    done = alice_browser.post(
        "/accounts/settings/", {"action": "delete", "confirm_email": " Alice@Example.com "}
    )
    assert done.status_code == 302 and done["Location"] == "/accounts/login/"
    assert not User.objects.filter(pk=alice.pk).exists()
    assert User.objects.filter(pk=bob.pk).exists()
    assert ApiKey.objects.filter(owner=bob).count() == 1


def test_delete_needs_csrf(alice):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    response = browser.post(
        "/accounts/settings/", {"action": "delete", "confirm_email": "alice@example.com"}
    )
    assert response.status_code == 403
    assert User.objects.filter(pk=alice.pk).exists()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_settings_page_in_a_browser(page, screenshot, live_server, alice):
    from tests.browser_helpers import login, serious_accessibility_failures

    cli_session_start(user=alice, origin="device", client_name="kay CLI on laptop")
    login(page, alice.email)
    page.get_by_role("link", name="Account settings").click()
    page.wait_for_url("**/accounts/settings/")
    expect(page.get_by_role("heading", name="Account settings")).to_be_visible()
    assert serious_accessibility_failures(page) == []
    screenshot(page, "account-settings")


def test_the_settings_page_query_count_is_flat(alice_browser, alice):
    from tests.helpers.queries import assert_flat_queries

    def add_row():
        cli_session_start(user=alice, origin="device", client_name="cli")

    assert_flat_queries(alice_browser, "/accounts/settings/", add_row, at_most=40)


def test_an_operator_cannot_delete_their_own_account_here(client, staff):
    """It would take the operator's console history (admin log entries) with it, and the
    last operator would leave the server without one."""
    from django.contrib.admin.models import CHANGE, LogEntry
    from django.contrib.contenttypes.models import ContentType

    LogEntry.objects.create(
        user=staff,
        content_type=ContentType.objects.get_for_model(User),
        object_id=str(staff.pk),
        object_repr=staff.email,
        action_flag=CHANGE,
    )
    client.force_login(staff)
    page = client.get("/accounts/settings/").content.decode()
    assert "This is an operator account" in page and "Delete my account" not in page
    response = client.post(
        "/accounts/settings/", {"action": "delete", "confirm_email": staff.email}
    )
    assert response.status_code == 400
    assert "This is an operator account" in response.content.decode()
    assert User.objects.filter(pk=staff.pk).exists()
    assert LogEntry.objects.filter(user=staff).count() == 1


def test_a_former_operator_can_delete_their_account(client, staff):
    staff.is_staff = staff.is_superuser = False
    staff.save()
    client.force_login(staff)
    response = client.post(
        "/accounts/settings/", {"action": "delete", "confirm_email": staff.email}
    )
    assert response.status_code == 302
    assert not User.objects.filter(pk=staff.pk).exists()


def test_a_half_finished_sign_in_cannot_delete_the_account(client, alice):
    """Signed up but not confirmed, or waiting for a login code: allauth has not logged the
    browser in, so settings sends it to sign in and nothing is deleted."""
    from tests.conftest import PASSWORD

    client.post(
        "/accounts/signup/",
        {"email": "new@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    code = client.post("/accounts/login/code/", {"email": alice.email})
    assert code["Location"] == "/accounts/login/code/confirm/"  # a code is waiting
    for email in ("new@example.com", alice.email):
        response = client.post("/accounts/settings/", {"action": "delete", "confirm_email": email})
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert User.objects.filter(email__in=["new@example.com", alice.email]).count() == 2


def test_a_device_login_approved_before_the_account_was_deleted_signs_nothing_in(
    api_client, alice_browser, alice
):
    from accounts.models import CliSession, DeviceAuthorization

    device = api_client.post("/api/auth/device", {}, format="json").json()
    alice_browser.post("/dashboard/device", {"user_code": device["user_code"], "action": "approve"})
    assert DeviceAuthorization.objects.get().status == DeviceAuthorization.Status.APPROVED
    alice_browser.post("/accounts/settings/", {"action": "delete", "confirm_email": alice.email})
    DeviceAuthorization.objects.update(last_polled_at=None)
    poll = api_client.post(
        "/api/auth/device/token", {"device_code": device["device_code"]}, format="json"
    )
    assert poll.status_code == 400 and poll.json()["error"]["code"] == "invalid_grant"
    assert not CliSession.objects.exists() and not User.objects.exists()


@pytest.mark.parametrize("back", ["https://evil.example/", "//evil.example/", "/admin/"])
def test_signing_a_cli_out_goes_back_only_to_our_own_pages(alice_browser, alice, back):
    session = cli_session_start(user=alice, origin="device")
    response = alice_browser.post(
        f"/dashboard/tokens/sessions/{session.public_id}/end", {"back": back}
    )
    assert response["Location"] == "/dashboard/tokens/"
