"""Account → Security activity: one trail of sign-ins, tokens and connections (issue 8 §4)."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import SecurityEvent
from accounts.services import RequestOrigin, security_event_record
from accounts.tokens import cli_session_revoke, cli_session_start
from connections.models import Connection
from connections.services import ConnectionUnreadable, connection_access_token
from core.fields import Ciphertext
from tests.connections.factories import ConnectionFactory
from tests.helpers.queries import assert_flat_queries

pytestmark = pytest.mark.django_db


def test_the_page_shows_only_my_events_newest_first(alice_browser, alice, bob):
    older = security_event_record(
        user=alice, kind="api_token_created", detail={"token_name": "laptop"}
    )
    SecurityEvent.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(days=2))
    security_event_record(
        user=alice,
        kind="connected",
        origin=RequestOrigin(ip="203.0.113.9", client="kay-cli/2.1"),
        detail={"service": "jira", "service_label": "Jira"},
    )
    security_event_record(user=bob, kind="connected", detail={"service": "bitbucket"})
    page = alice_browser.get("/accounts/security/")
    assert page.status_code == 200
    assert page["Cache-Control"] == "no-store"
    body = page.content.decode()
    assert body.index("Service connected: Jira") < body.index("API token created: laptop")
    assert "203.0.113.9" in body and "kay-cli/2.1" in body
    assert "bitbucket" not in body


def test_the_page_is_paginated_and_needs_a_sign_in(alice_browser, alice, client):
    for n in range(30):
        security_event_record(user=alice, kind="api_token_created", detail={"token_name": f"t{n}"})
    first = alice_browser.get("/accounts/security/")
    assert first.content.count(b'class="event"') == 25
    assert b"Page 1 of 2" in first.content
    assert alice_browser.get("/accounts/security/?page=2").content.count(b'class="event"') == 5
    assert alice_browser.get("/accounts/security/?page=%C2%B2").status_code == 200
    client.logout()
    assert client.get("/accounts/security/").status_code == 302


def test_the_page_query_count_is_flat(alice_browser, alice, staff):
    def add_event():
        security_event_record(user=alice, kind="cli_session_revoked", actor=staff)

    page = assert_flat_queries(alice_browser, "/accounts/security/", add_event).response
    assert page.content.count(b'class="event"') == 25
    assert page.content.count(b"ops@example.com (operator)") == 25


def test_tokens_and_cli_sign_outs_from_the_dashboard_are_recorded(alice_browser, alice):
    alice_browser.post("/dashboard/tokens/", {"name": "vs code"})
    token = alice.api_tokens.get()
    alice_browser.post(f"/dashboard/tokens/{token.pk}/revoke")
    session = cli_session_start(user=alice, origin="device")
    alice_browser.post(f"/dashboard/tokens/sessions/{session.public_id}/end")
    kinds = list(SecurityEvent.objects.filter(user=alice).values_list("kind", flat=True))
    assert kinds == [
        "cli_session_revoked",
        "cli_signed_in",
        "api_token_revoked",
        "api_token_created",
    ]
    created = SecurityEvent.objects.get(kind="api_token_created")
    assert created.ip_address == "127.0.0.1" and created.actor == alice


def test_operators_see_every_event_in_the_admin_and_revocations_name_them(staff, alice, bob):
    session = cli_session_start(user=alice, origin="device")
    cli_session_revoke(session=session, reason="revoked_by_operator", actor=staff)
    security_event_record(user=bob, kind="connected", detail={"service": "jira"})
    operator = Client()
    operator.force_login(staff)
    listing = operator.get("/admin/accounts/securityevent/")
    assert listing.status_code == 200
    assert b"alice@example.com" in listing.content and b"bob@example.com" in listing.content
    assert SecurityEvent.objects.get(kind="cli_session_revoked").actor == staff
    assert operator.get("/admin/accounts/securityevent/add/").status_code == 403


def test_disconnecting_records_an_event(alice_browser, alice):
    ConnectionFactory(user=alice, service="jira")
    alice_browser.post("/dashboard/connections/jira/disconnect")
    assert SecurityEvent.objects.get(user=alice).kind == "disconnected"


def test_an_unreadable_connection_token_is_a_409_asking_to_reconnect_and_is_recorded(alice, bob):
    mine = ConnectionFactory(user=alice, service="jira")
    theirs = ConnectionFactory(user=bob, service="jira")
    # A ciphertext sealed for bob's row does not open on alice's (or after a lost key).
    Connection.objects.filter(pk=mine.pk).update(access_token=Ciphertext(theirs.access_token))
    with pytest.raises(ConnectionUnreadable) as caught:
        connection_access_token(user=alice, service="jira")
    assert caught.value.status == 409
    assert "connect Jira again" in caught.value.message
    assert SecurityEvent.objects.get(user=alice).kind == "connection_unreadable"


def test_an_unreadable_refresh_token_is_a_409_too(alice, bob):
    mine = ConnectionFactory(user=alice, expires_at=timezone.now() + timedelta(seconds=30))
    theirs = ConnectionFactory(user=bob)
    Connection.objects.filter(pk=mine.pk).update(refresh_token=Ciphertext(theirs.refresh_token))
    with pytest.raises(ConnectionUnreadable):
        connection_access_token(user=alice, service="jira")
    assert SecurityEvent.objects.filter(user=alice, kind="connection_unreadable").count() == 1


def test_a_device_login_is_recorded_with_the_approving_address(alice_browser, alice, api_client):
    device = api_client.post("/api/auth/device", {"client_name": "build box"}, format="json")
    code = device.json()["user_code"]
    alice_browser.post(
        "/dashboard/device", {"user_code": code, "action": "approve"}, REMOTE_ADDR="198.51.100.7"
    )
    event = SecurityEvent.objects.get(user=alice, kind="cli_signed_in")
    assert event.ip_address == "198.51.100.7"
    assert event.detail == {"via": "device", "client": "build box"}


def test_the_device_page_shows_the_address_that_asked(alice_browser, api_client):
    device = api_client.post(
        "/api/auth/device", {"client_name": "build box"}, format="json", REMOTE_ADDR="192.0.2.44"
    )
    page = alice_browser.get(f"/dashboard/device?user_code={device.json()['user_code']}")
    assert b"192.0.2.44" in page.content
