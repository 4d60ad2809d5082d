"""Device login (RFC 8628): start, poll, approve or deny in the dashboard, brute force lock."""

from urllib.parse import urlsplit

import pytest

from accounts.devices import USER_CODE_ALPHABET
from accounts.models import CliSession, DeviceAuthorization
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
    assert set(pair) == {"token", "refresh_token", "message"}
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


def test_five_wrong_codes_lock_entry(api_client, alice_browser):
    body = start(api_client)
    for _ in range(5):
        wrong = alice_browser.post(
            "/dashboard/device", {"user_code": "BBBB-BBBB", "action": "check"}
        )
        assert wrong.status_code == 400
        assert b"not valid" in wrong.content
    locked = alice_browser.post(
        "/dashboard/device", {"user_code": body["user_code"], "action": "approve"}
    )
    assert locked.status_code == 429
    assert locked["Retry-After"] == "900"
    assert b"Too many wrong codes" in locked.content
    assert DeviceAuthorization.objects.get().status == "pending"


def test_the_device_page_needs_sign_in(client):
    response = client.get("/dashboard/device")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_a_decided_request_cannot_be_decided_again(api_client, alice_browser, client, bob):
    body = start(api_client)
    alice_browser.post("/dashboard/device", {"user_code": body["user_code"], "action": "approve"})
    client.force_login(bob)
    again = client.post("/dashboard/device", {"user_code": body["user_code"], "action": "deny"})
    assert again.status_code == 400
    row = DeviceAuthorization.objects.get()
    assert row.status == "approved" and row.user.email == "alice@example.com"


def test_many_accounts_on_one_address_cannot_share_the_guessing(api_client, client):
    from tests.accounts.factories import UserFactory

    for n in range(4):
        client.force_login(UserFactory())
        for _ in range(5):
            client.post("/dashboard/device", {"user_code": "BBBB-BBBB", "action": "check"})
    body = start(api_client)
    client.force_login(UserFactory())
    locked = client.post("/dashboard/device", {"user_code": body["user_code"], "action": "check"})
    assert locked.status_code == 429
