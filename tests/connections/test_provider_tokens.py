"""Atlassian access tokens refresh before use, from beat, and under a row lock."""

from datetime import timedelta

import httpx
import pytest
from django.db import connection as db_connection
from django.utils import timezone

from accounts.models import User
from connections import tasks
from connections.models import Connection
from connections.services import connection_access_token
from core.errors import ConnectionNeedsReauth, NotFound
from core.fields import decrypt_field
from tests.connections.helpers import connect_and_consent, first_login
from tests.helpers.races import run_at_once


def _expire_soon(minutes=4):
    Connection.objects.update(expires_at=timezone.now() + timedelta(minutes=minutes))


def _token_works(fake, token):
    response = httpx.get(
        f"{fake.atlassian_api_url}/me", headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code == 200


@pytest.mark.django_db
def test_a_fresh_token_is_used_as_is(oauth, api_client, client):
    first_login(api_client, client)
    user = User.objects.get()
    token = connection_access_token(user=user, service="jira")
    assert token == decrypt_field(Connection.objects.get(), "access_token")
    assert oauth.refresh_calls == 0
    assert _token_works(oauth, token)


@pytest.mark.django_db
def test_a_token_expiring_within_five_minutes_is_refreshed_first(oauth, api_client, client):
    first_login(api_client, client)
    user = User.objects.get()
    before = Connection.objects.get()
    old_refresh = decrypt_field(before, "refresh_token")
    _expire_soon()
    token = connection_access_token(user=user, service="jira")
    assert oauth.refresh_calls == 1
    after = Connection.objects.get()
    assert token == decrypt_field(after, "access_token") != decrypt_field(before, "access_token")
    assert decrypt_field(after, "refresh_token") != old_refresh  # rotated and kept
    assert decrypt_field(after, "refresh_token") in oauth.live_refresh_tokens()
    assert after.expires_at > timezone.now() + timedelta(minutes=55)
    assert after.last_refreshed_at > before.last_refreshed_at
    assert _token_works(oauth, token)


@pytest.mark.django_db
def test_invalid_grant_marks_the_connection_for_reauthorisation(
    oauth, api_client, client, alice_browser
):
    first_login(api_client, client)
    user = User.objects.get()
    oauth.revoke_refresh_tokens()
    _expire_soon()
    with pytest.raises(ConnectionNeedsReauth):
        connection_access_token(user=user, service="jira")
    connection = Connection.objects.get()
    assert connection.status == Connection.Status.NEEDS_REAUTH
    # No further refresh is attempted once the grant is known dead.
    with pytest.raises(ConnectionNeedsReauth):
        connection_access_token(user=user, service="jira")
    assert oauth.refresh_calls == 1
    alice_browser.force_login(user)
    page = alice_browser.get("/dashboard/connections/")
    assert b"Needs re-authorisation" in page.content
    assert b"Re-connect Jira" in page.content


@pytest.mark.django_db
def test_a_service_that_is_not_connected(alice):
    with pytest.raises(NotFound):
        connection_access_token(user=alice, service="jira")


@pytest.mark.django_db
def test_beat_refreshes_only_connections_expiring_soon(
    oauth, api_client, client, monkeypatch, django_capture_on_commit_callbacks
):
    started, status = first_login(api_client, client, "jira")
    connect_and_consent(api_client, client, "confluence", started["session_id"], status["token"])
    Connection.objects.filter(service="jira").update(
        expires_at=timezone.now() + timedelta(minutes=12)
    )
    queued = []
    monkeypatch.setattr(tasks.refresh_connection, "delay", lambda pk: queued.append(pk))
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.refresh_expiring_connections() == 1
    assert queued == [Connection.objects.get(service="jira").pk]
    tasks.refresh_connection(queued[0])
    assert oauth.refresh_calls == 1
    assert Connection.objects.get(service="jira").expires_at > timezone.now() + timedelta(
        minutes=55
    )
    # Running it again finds nothing to do.
    queued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.refresh_expiring_connections() == 0


@pytest.mark.django_db(transaction=True)
def test_two_threads_refreshing_at_once_spend_the_refresh_token_once(oauth, api_client, client):
    if db_connection.vendor != "postgresql":
        pytest.skip(
            "needs PostgreSQL row locks (select_for_update); run with DATABASE_URL=postgres://…"
        )
    first_login(api_client, client)
    user = User.objects.get()
    _expire_soon()
    oauth.refresh_delay = 0.5  # hold the first refresh open while the second arrives
    results = run_at_once(lambda _: connection_access_token(user=user, service="jira"), 2)
    assert oauth.refresh_calls == 1
    assert results[0] == results[1]
    assert _token_works(oauth, results[0])
    stored = Connection.objects.get()
    assert stored.status == Connection.Status.ACTIVE
    assert decrypt_field(stored, "refresh_token") in oauth.live_refresh_tokens()
