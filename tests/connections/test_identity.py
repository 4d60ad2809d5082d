"""Who a first connection belongs to (issue 4, "Identity on first connection")."""

import pytest
from allauth.account.models import EmailAddress
from django.test import Client

from accounts.models import AtlassianProfile, User
from connections.models import Connection
from tests.accounts.factories import UserFactory
from tests.connections.helpers import connect, connect_and_consent, consent, finish_callback

pytestmark = pytest.mark.django_db


def test_a_new_user_is_created_from_the_profile(oauth, api_client, client):
    _, callback = connect_and_consent(api_client, client)
    assert callback.status_code == 200
    user = User.objects.get(email="mia@example.com")
    assert not user.has_usable_password()
    assert EmailAddress.objects.get(user=user).verified is True


def test_no_account_is_created_from_an_email_atlassian_did_not_verify(oauth, api_client, client):
    # Otherwise anyone could pre-register mia@example.com and share it with her later.
    oauth.me = {**oauth.me, "email_verified": False}
    started, callback = connect_and_consent(api_client, client)
    assert callback.status_code == 400
    assert b"not verified" in callback.content
    assert not User.objects.exists()
    assert not AtlassianProfile.objects.exists()
    status = api_client.get(f"/auth/status/{started['state']}")
    assert status.json()["error"]["code"] == "email_not_verified"


def test_the_logged_in_browser_user_gets_the_connection(oauth, api_client, alice_browser, alice):
    started = connect(api_client)
    response = finish_callback(alice_browser, consent(started["authorization_url"]))
    assert response.status_code == 200
    assert b"signed in to Kay as <strong>alice" in response.content
    assert AtlassianProfile.objects.get(account_id=oauth.me["account_id"]).user == alice
    assert Connection.objects.get().user == alice
    assert not User.objects.filter(email="mia@example.com").exists()


def test_an_unverified_email_is_never_merged(oauth, api_client, client):
    mia = UserFactory(email="mia@example.com")
    EmailAddress.objects.filter(user=mia).update(verified=False)
    _, callback = connect_and_consent(api_client, client)
    assert callback.status_code == 400
    assert b"already exists" in callback.content
    assert Connection.objects.count() == 0


def test_an_email_atlassian_did_not_verify_is_never_merged(oauth, api_client, client):
    UserFactory(email="mia@example.com")
    oauth.me = {**oauth.me, "email_verified": False}
    _, callback = connect_and_consent(api_client, client)
    assert callback.status_code == 400
    assert Connection.objects.count() == 0


def test_an_atlassian_account_linked_elsewhere_cannot_join_another_session(
    oauth, api_client, bob_browser, alice
):
    # bob's CLI session exists; the Atlassian account belongs to alice.
    started = connect(api_client)
    oauth.me = {**oauth.me, "account_id": "bob-atlassian"}
    assert finish_callback(bob_browser, consent(started["authorization_url"])).status_code == 200
    token = api_client.get(f"/auth/status/{started['state']}").json()["token"]
    AtlassianProfile.objects.create(user=alice, account_id="alice-atlassian")
    oauth.me = {**oauth.me, "account_id": "alice-atlassian"}
    _, callback = connect_and_consent(
        api_client, bob_browser, "confluence", started["session_id"], token
    )
    assert callback.status_code == 400
    assert b"linked to another Kay account" in callback.content
    assert not Connection.objects.filter(service="confluence").exists()


def test_an_existing_verified_email_is_linked_only_once_its_owner_signs_in(
    oauth, api_client, client
):
    mia = UserFactory(email="mia@example.com")
    started = connect(api_client)
    landed = client.get(consent(started["authorization_url"]))
    confirm_url = landed["Location"]
    to_login = client.get(confirm_url)
    assert to_login.status_code == 302
    assert to_login["Location"].startswith("/accounts/login/?next=")
    assert not Connection.objects.exists()
    assert api_client.get(f"/auth/status/{started['state']}").json()["status"] == "pending"
    client.force_login(mia)
    page = client.get(confirm_url)
    assert b"Continue as mia@example.com" in page.content
    assert client.post(confirm_url, {"action": "link"}).status_code == 200
    assert Connection.objects.get().user == mia


def test_the_linked_account_wins_over_the_browser_user(oauth, api_client, client, alice, bob):
    AtlassianProfile.objects.create(user=alice, account_id=oauth.me["account_id"])
    client.force_login(bob)
    started = connect(api_client)
    landed = client.get(consent(started["authorization_url"]))
    confirm_url = landed["Location"]
    page = client.get(confirm_url)
    assert b"Sign in as alice@example.com to continue" in page.content
    assert b'value="link"' not in page.content
    # bob cannot complete it by posting anyway.
    assert client.post(confirm_url, {"action": "link"}).status_code == 302
    assert not Connection.objects.exists()
    client.force_login(alice)
    assert client.post(confirm_url, {"action": "link"}).status_code == 200
    assert Connection.objects.get().user == alice


def test_a_callback_link_sent_to_a_logged_in_user_links_nothing_until_they_confirm(
    oauth, api_client, alice_browser, alice
):
    # mallory runs `kay connect`, consents with her own Atlassian account, stops at the
    # redirect and sends the callback link to alice, who is logged in to Kay.
    oauth.me = {**oauth.me, "account_id": "mallory-atlassian", "email": "mallory@example.com"}
    started = connect(api_client, HTTP_USER_AGENT="kay-cli/1.0")
    link = consent(started["authorization_url"])
    confirm_url = alice_browser.get(link)["Location"]
    page = alice_browser.get(confirm_url)
    assert page.status_code == 200
    assert b"Sign in your CLI as alice@example.com?" in page.content
    assert started["user_code"].encode() in page.content
    assert b"kay-cli/1.0" in page.content and b"127.0.0.1" in page.content
    assert page["Cache-Control"] == "no-store"
    assert not Connection.objects.exists()
    assert not AtlassianProfile.objects.exists()
    assert api_client.get(f"/auth/status/{started['state']}").json()["status"] == "pending"
    # A forged POST without alice's CSRF token links nothing either.
    forger = Client(enforce_csrf_checks=True)
    forger.force_login(alice)
    assert forger.post(confirm_url, {"action": "link"}).status_code == 403
    assert not Connection.objects.exists()
    # alice cancels: nothing is linked and the CLI is told so.
    cancelled = alice_browser.post(confirm_url, {"action": "cancel"})
    assert cancelled.status_code == 400
    assert not Connection.objects.exists()
    assert not AtlassianProfile.objects.exists()
    status = api_client.get(f"/auth/status/{started['state']}")
    assert status.status_code == 400
    assert status.json()["error"]["code"] == "access_denied"


def test_a_new_identity_is_confirmed_with_the_code_before_the_account_exists(
    oauth, api_client, client
):
    started = connect(api_client)
    confirm_url = client.get(consent(started["authorization_url"]))["Location"]
    page = client.get(confirm_url)
    assert page.status_code == 200
    assert started["user_code"].encode() in page.content
    assert b"A new Kay account, <strong>mia@example.com</strong>" in page.content
    assert not User.objects.exists()
    assert client.post(confirm_url, {"action": "link"}).status_code == 200
    assert User.objects.get().email == "mia@example.com"
