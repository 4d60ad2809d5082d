"""Guessing the server secret of /api/keys/fetch from many addresses at once: an IPv6
client's whole /64 shares one budget and one audit row; refusals counted at the same time
from many connections all land on one row (PostgreSQL)."""

import pytest
from django.db import connection

from keys.access import fetch_denied_record
from keys.models import KeyAuditEvent
from keys.services import Origin
from tests.helpers.races import run_at_once
from tests.keys.conftest import server_auth

URL = "/api/keys/fetch"
WRONG = {"HTTP_AUTHORIZATION": "Bearer not-the-server-secret"}


def fetch(client, address, **headers):
    body = {"user_id": 1, "provider": "openai"}
    return client.post(URL, body, format="json", REMOTE_ADDR=address, **headers)


def test_rotating_addresses_within_one_ipv6_64_does_not_reset_the_limit(
    api_client, db, settings, one_rate_window
):
    settings.KEYS_FETCH_FAILURE_RATE = "3/min"
    codes = [fetch(api_client, f"2001:db8:1:2::{n:x}", **WRONG).status_code for n in range(1, 40)]
    assert codes[:3] == [401] * 3
    assert set(codes[3:]) == {429}
    assert fetch(api_client, "2001:db8:1:2::ffff", **server_auth()).status_code == 429
    # A flood from fresh addresses of the /64 is still two counted rows, not one per address.
    rows = KeyAuditEvent.objects.filter(action="fetch_denied")
    assert {(r.detail["reason"], r.count) for r in rows} == {
        ("bad_secret", 3),
        ("too_many_failures", 37),
    }


def test_another_ipv6_64_has_its_own_budget(api_client, db, settings, one_rate_window):
    settings.KEYS_FETCH_FAILURE_RATE = "1/min"
    assert fetch(api_client, "2001:db8:1:2::1", **WRONG).status_code == 401
    assert fetch(api_client, "2001:db8:1:2::2", **WRONG).status_code == 429
    assert fetch(api_client, "2001:db8:1:3::1", **WRONG).status_code == 401


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_refusals_recorded_at_once_from_many_connections_count_on_one_row():
    writers, each = 8, 25

    def refuse(_n: int) -> None:
        for _ in range(each):
            fetch_denied_record(origin=Origin("fetch_api", "203.0.113.9"), reason="bad_secret")

    run_at_once(refuse, writers)
    row = KeyAuditEvent.objects.get(action="fetch_denied")
    assert row.count == writers * each
