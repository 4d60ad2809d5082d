"""Device login (RFC 8628): start, poll, approve or deny in the dashboard; wrong codes slow
guessing down without locking out the right code."""

from urllib.parse import urlsplit

import pytest

from accounts.devices import USER_CODE_ALPHABET
from accounts.models import CliSession, DeviceAuthorization
from tests.accounts.factories import UserFactory
from tests.connections.helpers import bearer

pytestmark = pytest.mark.django_db


def start(client, name="kay CLI on laptop"):
    response = client.post("/api/auth/device", {"client_name": name}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def poll(client, device_code):
    return client.post("/api/auth/device/token", {"device_code": device_code}, format="json")


def test_start_returns_rfc_8628_fields(api_client, settings):
    body = start(api_client)
    assert set(body) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "interval",
        "expires_in",
    }
    code = body["user_code"].replace("-", "")
    assert len(code) == 8 and set(code) <= set(USER_CODE_ALPHABET)
    assert body["verification_uri"] == f"{settings.APP_URL}/dashboard/device"
    assert (
        body["verification_uri_complete"]
        == f"{body['verification_uri']}?user_code={body['user_code']}"
    )
    assert body["interval"] == 5 and body["expires_in"] == 900
    row = DeviceAuthorization.objects.get()
    assert body["device_code"] not in (row.device_code_hash, row.user_code_hash)
    assert code not in row.user_code_hash


def test_pending_then_approved_gives_the_token_pair_once(
    api_client, alice_browser, alice, time_machine
):
    time_machine.move_to("2026-01-01T10:00:00Z", tick=False)
    body = start(api_client)
    pending = poll(api_client, body["device_code"])
    assert pending.status_code == 400
    assert pending.json()["error"]["code"] == "authorization_pending"

    complete = urlsplit(body["verification_uri_complete"])
    page = alice_browser.get(f"{complete.path}?{complete.query}")
    assert page.status_code == 200
    assert b"kay CLI on laptop" in page.content
    approved = alice_browser.post(
        "/dashboard/device", {"user_code": body["user_code"], "action": "approve"}
    )
    assert approved.status_code == 200
    assert b"Device approved" in approved.content

    time_machine.move_to("2026-01-01T10:00:06Z", tick=False)
    tokens = poll(api_client, body["device_code"])
    assert tokens.status_code == 200
    pair = tokens.json()
    assert {"token", "refresh_token", "message"} <= set(pair)
    me = api_client.get("/auth/me", **bearer(pair["token"]))
    assert me.json()["data"]["email"] == alice.email
    assert CliSession.objects.get().client_name == "kay CLI on laptop"
    assert (
        api_client.post(
            "/auth/refresh", {"refresh_token": pair["refresh_token"]}, format="json"
        ).status_code
        == 200
    )

    time_machine.move_to("2026-01-01T10:00:12Z", tick=False)
    again = poll(api_client, body["device_code"])
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "invalid_grant"


def test_polling_too_fast_answers_slow_down_and_grows_the_interval(api_client, time_machine):
    time_machine.move_to("2026-01-01T10:00:00Z", tick=False)
    body = start(api_client)
    assert poll(api_client, body["device_code"]).json()["error"]["code"] == "authorization_pending"
    time_machine.move_to("2026-01-01T10:00:02Z", tick=False)
    fast = poll(api_client, body["device_code"])
    assert fast.json()["error"]["code"] == "slow_down"
    assert fast.headers["Retry-After"] == "10"
    assert DeviceAuthorization.objects.get().interval == 10
    time_machine.move_to("2026-01-01T10:00:08Z", tick=False)  # 6 s: still under 10
    assert poll(api_client, body["device_code"]).json()["error"]["code"] == "slow_down"
    time_machine.move_to("2026-01-01T10:00:30Z", tick=False)
    assert poll(api_client, body["device_code"]).json()["error"]["code"] == "authorization_pending"


def test_denied_request_answers_access_denied(api_client, alice_browser):
    body = start(api_client)
    denied = alice_browser.post(
        "/dashboard/device", {"user_code": body["user_code"], "action": "deny"}
    )
    assert b"Request denied" in denied.content
    response = poll(api_client, body["device_code"])
    assert response.json()["error"]["code"] == "access_denied"
    assert CliSession.objects.count() == 0


def test_expired_code_answers_expired_token_and_cannot_be_approved(
    api_client, alice_browser, time_machine
):
    time_machine.move_to("2026-01-01T10:00:00Z", tick=False)
    body = start(api_client)
    time_machine.move_to("2026-01-01T10:15:01Z", tick=False)
    assert poll(api_client, body["device_code"]).json()["error"]["code"] == "expired_token"
    page = alice_browser.post(
        "/dashboard/device", {"user_code": body["user_code"], "action": "approve"}
    )
    assert page.status_code == 400
    assert DeviceAuthorization.objects.get().status == "pending"


def test_unknown_device_code(api_client):
    response = poll(api_client, "nope")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_grant"


def test_codes_are_accepted_in_any_case_and_spacing(api_client, alice_browser):
    body = start(api_client)
    sloppy = body["user_code"].lower().replace("-", " ")
    page = alice_browser.post("/dashboard/device", {"user_code": sloppy, "action": "check"})
    assert page.status_code == 200
    assert b"Approve" in page.content


def check(client, code, **extra):
    return client.post("/dashboard/device", {"user_code": code, "action": "check"}, **extra)


WRONG = "BBBB-BBBB"


def test_past_five_wrong_codes_each_attempt_waits_longer(api_client, alice_browser, time_machine):
    time_machine.move_to("2026-01-01T10:00:00Z", tick=False)
    body = start(api_client)
    for _ in range(5):
        wrong = check(alice_browser, WRONG)
        assert wrong.status_code == 400
        assert b"not valid" in wrong.content
    slowed = check(alice_browser, body["user_code"])
    assert slowed.status_code == 429
    assert slowed["Retry-After"] == "5"
    assert b"Too many wrong codes" in slowed.content

    time_machine.move_to("2026-01-01T10:00:05Z", tick=False)
    assert check(alice_browser, WRONG).status_code == 400  # the sixth: next wait 10 s
    time_machine.move_to("2026-01-01T10:00:06Z", tick=False)
    again = check(alice_browser, body["user_code"])
    assert again.status_code == 429 and again["Retry-After"] == "9"
    assert DeviceAuthorization.objects.get().status == "pending"

    time_machine.move_to("2026-01-01T10:00:15Z", tick=False)
    assert check(alice_browser, body["user_code"]).status_code == 200
    approved = alice_browser.post(
        "/dashboard/device", {"user_code": body["user_code"], "action": "approve"}
    )
    assert b"Device approved" in approved.content
    assert DeviceAuthorization.objects.get().status == "approved"


def test_wrong_approvals_are_counted_too(api_client, alice_browser):
    for _ in range(5):
        wrong = alice_browser.post("/dashboard/device", {"user_code": WRONG, "action": "approve"})
        assert wrong.status_code == 400
    assert check(alice_browser, WRONG).status_code == 429


def test_the_device_page_needs_sign_in(client):
    response = client.get("/dashboard/device")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_a_decided_request_cannot_be_decided_again(api_client, alice_browser, bob_browser):
    body = start(api_client)
    alice_browser.post("/dashboard/device", {"user_code": body["user_code"], "action": "approve"})
    decision = {"user_code": body["user_code"], "action": "deny"}
    again = bob_browser.post("/dashboard/device", decision)
    assert again.status_code == 400
    row = DeviceAuthorization.objects.get()
    assert row.status == "approved" and row.user.email == "alice@example.com"


def wrong_codes_from_other_accounts(client, accounts, each, **extra):
    """Each account types ``each`` wrong codes; the answers (400, or 429 once slowed)."""
    answers = []
    for _ in range(accounts):
        client.force_login(UserFactory())
        answers += [check(client, WRONG, **extra).status_code for _ in range(each)]
    return answers


def test_wrong_codes_from_other_accounts_never_block_the_right_code(api_client, client):
    # Behind one proxy address: many people's typos (or someone's guessing) on it.
    answers = wrong_codes_from_other_accounts(client, accounts=6, each=5)
    assert answers[:20] == [400] * 20 and 429 in answers[20:]  # the guessing is slowed
    body = start(api_client)
    client.force_login(UserFactory())
    assert check(client, body["user_code"]).status_code == 200
    approved = client.post(
        "/dashboard/device", {"user_code": body["user_code"], "action": "approve"}
    )
    assert b"Device approved" in approved.content


def test_accounts_sharing_an_address_are_slowed_once_they_type_a_wrong_code(
    api_client, client, time_machine
):
    time_machine.move_to("2026-01-01T10:00:00Z", tick=False)
    answers = wrong_codes_from_other_accounts(client, accounts=10, each=2)
    assert answers == [400] * 20  # the address's free wrong codes
    body = start(api_client)
    client.force_login(UserFactory())
    assert check(client, WRONG).status_code == 400  # no wrong code of their own yet
    slowed = check(client, body["user_code"])
    assert slowed.status_code == 429 and slowed["Retry-After"] == "10"
    time_machine.move_to("2026-01-01T10:00:10Z", tick=False)
    assert check(client, body["user_code"]).status_code == 200


def test_behind_a_trusted_proxy_each_client_address_has_its_own_budget(
    api_client, client, settings
):
    settings.TRUSTED_PROXY_COUNT = 1
    guesser = {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "203.0.113.1"}
    assert 429 in wrong_codes_from_other_accounts(client, accounts=7, each=3, **guesser)
    body = start(api_client)
    client.force_login(UserFactory())
    elsewhere = {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "203.0.113.2"}
    assert check(client, WRONG, **elsewhere).status_code == 400
    assert check(client, body["user_code"], **elsewhere).status_code == 200
    # The same person at the guessing address is held back by it after a typo.
    forged = {**guesser, "HTTP_X_FORWARDED_FOR": "198.51.100.9, 203.0.113.1"}
    client.force_login(UserFactory())
    assert check(client, WRONG, **forged).status_code == 400
    assert check(client, body["user_code"], **forged).status_code == 429


def test_a_standard_form_encoded_device_flow_client_works(api_client, alice_browser):
    """RFC 8628 §3.1 and §3.4: form-encoded requests, RFC 6749 shapes back."""
    started = api_client.post(
        "/api/auth/device",
        "client_id=kay-cli&scope=",
        content_type="application/x-www-form-urlencoded",
    )
    assert started.status_code == 200
    device = started.json()
    poll_body = (
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code"
        f"&device_code={device['device_code']}&client_id=kay-cli"
    )
    form = "application/x-www-form-urlencoded"
    pending = api_client.post("/api/auth/device/token", poll_body, content_type=form)
    assert pending.status_code == 400
    assert pending.json()["error"] == "authorization_pending"
    assert pending.json()["error_description"]
    alice_browser.post("/dashboard/device", {"user_code": device["user_code"], "action": "approve"})
    DeviceAuthorization.objects.update(last_polled_at=None)
    granted = api_client.post("/api/auth/device/token", poll_body, content_type=form)
    assert granted.status_code == 200
    body = granted.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    assert body["access_token"] == body["token"] and body["refresh_token"]
    assert (
        api_client.get("/auth/me", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}").status_code
        == 200
    )


def test_a_wrong_grant_type_is_refused(api_client):
    device = api_client.post("/api/auth/device", {}, format="json").json()
    response = api_client.post(
        "/api/auth/device/token",
        f"grant_type=password&device_code={device['device_code']}",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_json_polls_keep_kays_error_shape(api_client):
    device = api_client.post("/api/auth/device", {}, format="json").json()
    response = api_client.post(
        "/api/auth/device/token", {"device_code": device["device_code"]}, format="json"
    )
    assert response.json()["error"]["code"] == "authorization_pending"


def test_wrong_codes_from_one_ipv6_64_share_one_address_budget(alice, bob, settings):
    from accounts.devices import _budgets

    first = dict(_budgets(alice, "2001:db8:1:2::1"))
    second = dict(_budgets(bob, "2001:db8:1:2:ffff::9"))
    assert [k for k in first if k.startswith("ip:")] == [k for k in second if k.startswith("ip:")]


FORM = "application/x-www-form-urlencoded"


def test_a_form_encoded_device_authorization_error_has_the_rfc_6749_shape(api_client):
    """The client that gets RFC 6749 errors from the token endpoint gets them from the
    authorization endpoint too, with a code from RFC 6749 §5.2's list."""
    response = api_client.post("/api/auth/device", f"client_name={'x' * 101}", content_type=FORM)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.json()["error_description"]


def test_a_form_poll_missing_its_device_code_is_an_invalid_request(api_client):
    response = api_client.post(
        "/api/auth/device/token", "grant_type=x&client_id=kay", content_type=FORM
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_a_form_content_type_in_capitals_is_still_a_form_client(api_client):
    """Media types are case-insensitive (RFC 9110 8.3.1): DRF parses this as a form, so
    the answer must have the form client's shape too."""
    response = api_client.post(
        "/api/auth/device/token",
        "device_code=nope",
        content_type="Application/X-WWW-Form-URLEncoded; charset=UTF-8",
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
