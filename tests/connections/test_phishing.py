"""Attacks on the OAuth flows (issue 8): links sent to a victim, leaked session ids, and
access that must not outlive a revoked sign-in."""

import re

import pytest
from django.core import mail
from django.db import connection as db_connection
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import ApiToken, AtlassianProfile, CliSession, SecurityEvent, User
from accounts.tokens import TokenRejected, api_token_create, cli_session_revoke
from connections.models import Connection, KaySession, OAuthState
from tests.accounts.factories import UserFactory
from tests.connections.helpers import bearer, connect, consent, first_login
from tests.helpers.races import run_at_once

pytestmark = pytest.mark.django_db


def _dashboard_start(browser, service="jira") -> str:
    response = browser.post(f"/dashboard/connections/{service}/connect")
    assert response.status_code == 302
    return response["Location"]


# --- dashboard state bound to the browser and user that started it ------------------------


def test_a_dashboard_link_sent_to_another_user_links_nothing(oauth, client, alice, bob_browser):
    # bob starts a Jira connection in his dashboard and sends the Atlassian link to alice.
    authorize_url = _dashboard_start(bob_browser)
    client.force_login(alice)
    landed = client.get(consent(authorize_url))
    assert landed.status_code == 400
    assert b"started in another browser" in landed.content
    assert not Connection.objects.exists()
    assert not AtlassianProfile.objects.exists()
    assert OAuthState.objects.get().status == OAuthState.Status.FAILED


def test_a_dashboard_link_opened_by_a_logged_out_victim_links_nothing(oauth, client, bob_browser):
    landed = client.get(consent(_dashboard_start(bob_browser)))
    assert landed.status_code == 400
    assert not Connection.objects.exists()
    assert not AtlassianProfile.objects.exists()


def test_a_dashboard_link_finished_in_another_browser_of_the_same_user_links_nothing(oauth, alice):
    first, second = Client(), Client()
    first.force_login(alice)
    second.force_login(alice)
    landed = second.get(consent(_dashboard_start(first)))
    assert landed.status_code == 400
    assert not Connection.objects.exists()


def test_a_dashboard_link_completes_in_the_browser_that_started_it(oauth, alice_browser, alice):
    landed = alice_browser.get(consent(_dashboard_start(alice_browser)))
    assert landed.status_code == 302 and landed["Location"] == "/dashboard/connections/"
    assert Connection.objects.get().user == alice
    assert SecurityEvent.objects.filter(user=alice, kind="connected").exists()


# --- a phished CLI connect link ---------------------------------------------------------


def test_a_phished_cli_link_does_not_sign_the_attacker_in_as_a_logged_out_victim(
    oauth, api_client, client
):
    mia = UserFactory(email="mia@example.com")  # verified, like her Atlassian email
    started = connect(api_client)  # the attacker's CLI
    landed = client.get(consent(started["authorization_url"]))  # mia consents
    confirm_url = landed["Location"]
    assert client.get(confirm_url)["Location"].startswith("/accounts/login/")
    assert api_client.get(f"/auth/status/{started['state']}").json()["status"] == "pending"
    assert not CliSession.objects.exists() and not Connection.objects.exists()
    # The attacker's own browser, without mia's cookie, cannot confirm for her either.
    attacker = Client()
    attacker.force_login(UserFactory(email="mallory@example.com"))
    assert b"no sign-in waiting" in attacker.post(confirm_url, {"action": "link"}).content
    # Nor can a forged cross-site POST from mia's browser once she signs in.
    mia_browser = Client(enforce_csrf_checks=True)
    mia_browser.cookies = client.cookies
    mia_browser.force_login(mia)
    assert mia_browser.post(confirm_url, {"action": "link"}).status_code == 403
    assert not CliSession.objects.exists()
    assert OAuthState.objects.get().status == OAuthState.Status.AWAITING_CONFIRMATION


def test_an_account_without_password_confirms_after_an_emailed_code(oauth, api_client, client):
    # mia's account was created by an earlier CLI sign-in, so it has no password.
    _, first = first_login(api_client, client)
    client.logout()
    started = connect(api_client)
    confirm_url = client.get(consent(started["authorization_url"]))["Location"]
    to_code = client.get(confirm_url)
    assert to_code["Location"].startswith("/accounts/login/code/?next=")
    asked = client.post(to_code["Location"], {"email": "mia@example.com"}, follow=True)
    assert asked.status_code == 200
    code = re.search(r"^\s*([A-Z0-9-]{6,})\s*$", mail.outbox[-1].body, re.MULTILINE).group(1)
    confirm_page = client.post(
        asked.redirect_chain[-1][0], {"code": code, "next": confirm_url}, follow=True
    )
    assert confirm_page.request["PATH_INFO"] == confirm_url
    assert started["user_code"].encode() in confirm_page.content
    assert client.post(confirm_url, {"action": "link"}).status_code == 200
    assert api_client.get(f"/auth/status/{started['state']}").json()["token"]
    assert CliSession.objects.count() == 2


def test_the_confirmation_expires(oauth, api_client, client, time_machine):
    started = connect(api_client)
    confirm_url = client.get(consent(started["authorization_url"]))["Location"]
    time_machine.move_to(OAuthState.objects.get().expires_at.timestamp() + 1)
    assert client.post(confirm_url, {"action": "link"}).status_code == 400
    assert not User.objects.exists()
    body = api_client.get(f"/auth/status/{started['state']}").json()
    assert body["error"]["code"] == "state_expired"


# --- a leaked session_id -------------------------------------------------------------------


def test_a_signed_in_session_id_alone_cannot_connect_another_account(
    oauth, api_client, client, bob_api
):
    started, status = first_login(api_client, client)
    leaked = {"session_id": started["session_id"]}
    anonymous = api_client.post("/connections/connect?service=confluence", leaked, format="json")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "authentication_required"
    assert (
        bob_api.post("/connections/connect?service=confluence", leaked, format="json")
    ).status_code == 404
    own = api_client.post(
        "/connections/connect?service=confluence", leaked, format="json", **bearer(status["token"])
    )
    assert own.status_code == 200


# --- personal tokens minted by a CLI sign-in die with it ----------------------------------


def _mint(api_client, token: str) -> str:
    response = api_client.post("/api/token", {"name": "minted"}, format="json", **bearer(token))
    assert response.status_code == 201
    return response.json()["token"]


def _operator_acts_on_the_cli_session(api_client, client, staff, **action) -> str:
    """A CLI signs in and mints an API token, then an operator runs the admin ``action`` on
    its session. Returns the minted token."""
    _, status = first_login(api_client, client)
    minted = _mint(api_client, status["token"])
    operator = Client()
    operator.force_login(staff)
    response = operator.post(
        "/admin/accounts/clisession/",
        {"_selected_action": [CliSession.objects.get().pk], **action},
    )
    assert response.status_code == 302
    return minted


def test_a_token_minted_by_a_cli_session_stops_working_on_logout(oauth, api_client, client):
    _, status = first_login(api_client, client)
    minted = _mint(api_client, status["token"])
    assert api_client.get("/auth/me", **bearer(minted)).status_code == 200
    assert api_client.post("/auth/logout", **bearer(status["token"])).status_code == 200
    refused = api_client.get("/auth/me", **bearer(minted))
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "token_revoked"


def test_a_token_minted_by_a_cli_session_stops_working_on_refresh_token_reuse(
    oauth, api_client, client
):
    _, status = first_login(api_client, client)
    minted = _mint(api_client, status["token"])
    body = {"refresh_token": status["refresh_token"]}
    assert api_client.post("/auth/refresh", body, format="json").status_code == 200
    assert api_client.post("/auth/refresh", body, format="json").status_code == 401  # reuse
    assert api_client.get("/auth/me", **bearer(minted)).status_code == 401
    user = User.objects.get()
    assert SecurityEvent.objects.filter(user=user, kind="refresh_reuse").count() == 1


def test_a_token_minted_by_a_cli_session_stops_working_when_an_operator_revokes_it(
    oauth, api_client, client, staff
):
    minted = _operator_acts_on_the_cli_session(api_client, client, staff, action="revoke")
    assert api_client.get("/auth/me", **bearer(minted)).status_code == 401
    assert ApiToken.objects.get().revoked_at is not None
    event = SecurityEvent.objects.get(kind="cli_session_revoked")
    assert event.actor == staff and event.detail["api_tokens_revoked"] == 1


def test_tokens_made_in_the_browser_survive_a_cli_logout(oauth, api_client, client):
    _, status = first_login(api_client, client)
    user = User.objects.get()
    browser = Client()
    browser.force_login(user)
    browser.post("/dashboard/tokens/", {"name": "browser token"})
    assert api_client.post("/auth/logout", **bearer(status["token"])).status_code == 200
    assert ApiToken.objects.get(name="browser token").revoked_at is None


# --- attack review: a signed-in CLI's link for another service ----------------------------

VERA = {"account_id": "vera-atlassian", "email": "vera@example.com", "name": "Vera Victim"}


def test_a_signed_in_cli_link_sent_to_a_victim_does_not_take_her_atlassian_tokens(
    oauth, api_client, client
):
    # mallory's CLI is signed in (her own Atlassian account); she connects Confluence on
    # her session and sends the Atlassian link to vera, who consents in her own browser.
    mallory_browser = Client()
    oauth.me = {**oauth.me, "account_id": "mallory-atlassian", "email": "mallory@example.com"}
    started, status = first_login(api_client, mallory_browser)
    mallory = User.objects.get(email="mallory@example.com")
    oauth.me = {**oauth.me, **VERA}
    vera = UserFactory(email="vera@example.com")  # a Kay user who never linked Atlassian
    client.force_login(vera)
    link = connect(api_client, "confluence", started["session_id"], **bearer(status["token"]))
    landed = client.get(consent(link["authorization_url"]))
    # Nothing joins mallory's account: the browser is asked to confirm as mallory.
    assert not Connection.objects.filter(user=mallory, service="confluence").exists()
    assert not AtlassianProfile.objects.filter(account_id="vera-atlassian").exists()
    confirm_url = landed["Location"]
    assert "/connections/oauth/confirm/" in confirm_url
    page = client.get(confirm_url)
    assert b"Sign in as mallory@example.com to continue" in page.content
    assert client.post(confirm_url, {"action": "link"}).status_code == 302
    assert not Connection.objects.filter(service="confluence").exists()
    assert api_client.get(f"/auth/status/{link['state']}").json()["status"] == "pending"


def test_a_signed_in_cli_link_opened_logged_out_sends_the_browser_to_sign_in(
    oauth, api_client, client
):
    # A CLI signed in by device login has no Atlassian identity yet: whatever account
    # consents must not become its identity without its owner's browser.
    mallory = UserFactory(email="mallory@example.com")
    started = connect(api_client)
    KaySession.objects.update(user=mallory)
    api_client.force_authenticate(mallory)
    link = connect(api_client, "jira", started["session_id"])
    oauth.me = {**oauth.me, **VERA}
    victim = Client()
    confirm_url = victim.get(consent(link["authorization_url"]))["Location"]
    assert victim.get(confirm_url)["Location"].startswith("/accounts/login/")
    assert not Connection.objects.exists() and not AtlassianProfile.objects.exists()


def test_a_signed_in_cli_connects_its_own_atlassian_account_at_once(oauth, api_client, client):
    started, status = first_login(api_client, client)
    link = connect(api_client, "confluence", started["session_id"], **bearer(status["token"]))
    landed = Client().get(consent(link["authorization_url"]))
    assert landed.status_code == 200
    assert Connection.objects.filter(service="confluence").exists()


def test_a_signed_in_cli_connects_another_atlassian_account_once_its_owner_confirms(
    oauth, api_client, client
):
    started, status = first_login(api_client, client)
    mia = User.objects.get(email="mia@example.com")
    oauth.me = {**oauth.me, **VERA}
    link = connect(api_client, "confluence", started["session_id"], **bearer(status["token"]))
    client.force_login(mia)
    confirm_url = client.get(consent(link["authorization_url"]))["Location"]
    page = client.get(confirm_url)
    assert link["user_code"].encode() in page.content
    assert b"vera@example.com" in page.content
    assert client.post(confirm_url, {"action": "link"}).status_code == 200
    assert Connection.objects.get(service="confluence").user == mia
    assert b"no sign-in waiting" in client.post(confirm_url, {"action": "link"}).content
    body = api_client.get(f"/auth/status/{link['state']}").json()
    assert body["status"] == "completed" and "token" not in body


def test_a_token_minted_by_a_cli_session_ends_when_the_session_expires(
    oauth, api_client, client, settings, time_machine
):
    settings.CLI_SESSION_ABSOLUTE_LIFETIME = 3600
    _, status = first_login(api_client, client)
    minted = _mint(api_client, status["token"])
    session = CliSession.objects.get()
    assert ApiToken.objects.get().expires_at <= session.expires_at
    time_machine.move_to(session.expires_at.timestamp() + 1)
    assert api_client.get("/auth/me", **bearer(minted)).status_code == 401


def test_a_cli_session_revoked_while_minting_gets_no_token_that_outlives_it(
    oauth, api_client, client
):
    # The revocation commits between the Bearer check and the insert: the token must not
    # be born unrevoked (it would work again once the purge unlinks the ended session).
    first_login(api_client, client)
    session = CliSession.objects.get()
    cli_session_revoke(session=session, reason="logout")
    with pytest.raises(TokenRejected):
        api_token_create(user=session.user, name="late", cli_session=session)
    assert not ApiToken.objects.exists()


# --- races (PostgreSQL row locks) ---------------------------------------------------------


needs_row_locks = pytest.mark.skipif(
    db_connection.vendor != "postgresql",
    reason="needs PostgreSQL row locks; run with DATABASE_URL=postgres://…",
)


def _twin(browser: Client) -> Client:
    twin = Client()
    twin.cookies = browser.cookies
    return twin


def _two_tabs_answer_at_once(api_client, client, first: str, second: str):
    """A CLI's link waits for the browser; two tabs of it post the ``first`` and ``second``
    actions at once. Returns the CLI's start and the two answers' status codes."""
    started = connect(api_client)
    confirm_url = client.get(consent(started["authorization_url"]))["Location"]
    tabs, actions = (_twin(client), _twin(client)), (first, second)
    answers = run_at_once(
        lambda n: tabs[n].post(confirm_url, {"action": actions[n]}).status_code, 2
    )
    return started, answers


@needs_row_locks
@pytest.mark.django_db(transaction=True)
def test_two_confirmations_at_once_sign_the_cli_in_once(oauth, api_client, client):
    started, answers = _two_tabs_answer_at_once(api_client, client, "link", "link")
    assert sorted(answers) == [200, 400]
    assert CliSession.objects.count() == 1 and User.objects.count() == 1
    assert api_client.get(f"/auth/status/{started['state']}").json()["token"]


@needs_row_locks
@pytest.mark.django_db(transaction=True)
def test_a_confirmation_racing_a_cancel_leaves_one_outcome(oauth, api_client, client):
    _, answers = _two_tabs_answer_at_once(api_client, client, "link", "cancel")
    state = OAuthState.objects.get()
    assert state.pending_tokens is None
    if state.status == OAuthState.Status.FAILED:
        assert answers == [400, 400] and not CliSession.objects.exists()
    else:
        assert answers == [200, 400] and CliSession.objects.count() == 1


@needs_row_locks
@pytest.mark.django_db(transaction=True)
def test_a_refresh_token_sent_twice_at_once_ends_the_family(oauth, api_client, client):
    _, status = first_login(api_client, client)
    body = {"refresh_token": status["refresh_token"]}
    clients = [APIClient(), APIClient()]
    answers = run_at_once(lambda n: clients[n].post("/auth/refresh", body, format="json"), 2)
    assert sorted(a.status_code for a in answers) == [200, 401]
    winner = next(a for a in answers if a.status_code == 200).json()
    assert api_client.get("/auth/me", **bearer(winner["token"])).status_code == 401
    retry = {"refresh_token": winner["refresh_token"]}
    assert api_client.post("/auth/refresh", retry, format="json").status_code == 401


# --- attack review: what held ---------------------------------------------------------------


def test_the_browser_nonce_cookie_is_signed_httponly_lax_and_secure_on_https(
    oauth, api_client, client
):
    started = connect(api_client)
    landed = client.get(consent(started["authorization_url"]), secure=True)
    cookie = landed.cookies["kay_oauth"]
    assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Lax"
    # A value not signed by us is no nonce at all.
    forged = Client()
    forged.cookies["kay_oauth"] = cookie.value.split(":")[0]
    assert b"no sign-in waiting" in forged.get(landed["Location"]).content


def test_polling_tells_the_phisher_nothing_about_the_victim(oauth, api_client, client, bob):
    mia = UserFactory(email="mia@example.com")
    AtlassianProfile.objects.create(user=mia, account_id=oauth.me["account_id"])
    started = connect(api_client)
    confirm_url = client.get(consent(started["authorization_url"]))["Location"]
    client.force_login(bob)  # signed in as someone else: told to sign in as mia
    client.post(confirm_url, {"action": "link"})
    body = api_client.get(f"/auth/status/{started['state']}").json()
    assert body == {"status": "pending", "message": "Authorization not yet completed"}


def test_a_login_code_allows_three_guesses_then_not_even_the_right_code(oauth, api_client, client):
    first_login(api_client, client)  # mia's account, created by a CLI: no password
    attacker = Client()
    asked = attacker.post("/accounts/login/code/", {"email": "mia@example.com"}, follow=True)
    confirm = asked.redirect_chain[-1][0]
    code = re.search(r"^\s*([A-Z0-9-]{6,})\s*$", mail.outbox[-1].body, re.MULTILINE).group(1)
    for guess in ("BCDF-GHJK", "LMNP-QRST", "VWXZ-BCDF"):
        attacker.post(confirm, {"code": guess})
    attacker.post(confirm, {"code": code})
    assert "_auth_user_id" not in attacker.session


def test_deleting_a_cli_session_in_the_admin_ends_its_minted_tokens_and_is_recorded(
    oauth, api_client, client, staff
):
    minted = _operator_acts_on_the_cli_session(
        api_client, client, staff, action="delete_selected", post="yes"
    )
    assert not CliSession.objects.exists()
    assert api_client.get("/auth/me", **bearer(minted)).status_code == 401
    assert SecurityEvent.objects.get(kind="cli_session_revoked").actor == staff


def test_an_unknown_service_is_not_repeated_and_a_missing_one_is_named(api_client, db):
    sent = "<script>alert(1)</script>"
    response = api_client.post(f"/connections/connect?service={sent}")
    assert response.status_code == 400
    assert "script" not in response.content.decode()
    missing = api_client.post("/connections/connect")
    assert missing.status_code == 400
    assert missing.json()["error"]["fields"] == {"service": ["This field is required."]}
