"""Purging expired sign-in records, deleting a user, re-authorising a connection."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import (
    ApiToken,
    AtlassianProfile,
    CliSession,
    DeviceAuthorization,
    RefreshToken,
    User,
)
from accounts.tokens import api_token_create
from connections import tasks
from connections.models import (
    AccessibleResource,
    Connection,
    KaySession,
    OAuthState,
)
from connections.services import connection_access_token
from core.errors import ConnectionNeedsReauth
from tests.connections.helpers import connect, connect_and_consent, consent, first_login

pytestmark = pytest.mark.django_db


def test_purge_removes_only_what_has_expired(oauth, api_client, client, time_machine):
    started, _ = first_login(api_client, client)  # a linked session and a used state
    connect(api_client)  # an abandoned CLI start: unlinked session, pending state
    api_client.post("/api/auth/device", {}, format="json")
    user = User.objects.get()
    api_token_create(user=user, name="old")
    assert tasks.purge_expired_auth_records() == {
        "oauth_states": 0,
        "kay_sessions": 0,
        "cli_sessions": 0,
        "api_tokens": 0,
        "device_authorizations": 0,
    }
    time_machine.move_to(timezone.now() + timedelta(days=32))
    counts = tasks.purge_expired_auth_records()
    assert counts["oauth_states"] == 2
    assert counts["kay_sessions"] == 1  # only the never-linked one
    assert counts["device_authorizations"] == 1
    assert counts["api_tokens"] == 1
    assert counts["cli_sessions"] >= 1
    assert OAuthState.objects.count() == 0
    assert KaySession.objects.filter(user=user).count() == 1
    assert not DeviceAuthorization.objects.exists()
    assert not ApiToken.objects.exists()
    assert not CliSession.objects.exists() and not RefreshToken.objects.exists()
    # The linked session and its connection survive: the CLI can still list them.
    listing = api_client.get(f"/connections?session_id={started['session_id']}")
    assert listing.json()["connections"]["jira"] is True


def test_deleting_a_user_deletes_everything_of_theirs(oauth, api_client, client):
    started, status = first_login(api_client, client)
    connect_and_consent(api_client, client, "confluence", started["session_id"], status["token"])
    user = User.objects.get()
    api_token_create(user=user, name="t")
    user.delete()
    for model in (
        KaySession,
        OAuthState,
        Connection,
        AccessibleResource,
        AtlassianProfile,
        CliSession,
        RefreshToken,
        ApiToken,
    ):
        assert not model.objects.exists(), model.__name__


def test_connecting_again_repairs_a_connection_that_needs_reauthorisation(
    oauth, api_client, client
):
    started, status = first_login(api_client, client)
    user = User.objects.get()
    oauth.revoke_refresh_tokens()
    Connection.objects.update(expires_at=timezone.now() + timedelta(minutes=1))
    with pytest.raises(ConnectionNeedsReauth):
        connection_access_token(user=user, service="jira")
    listing = api_client.get(f"/connections?session_id={started['session_id']}").json()
    assert listing["connections"]["jira"] is False

    _, callback = connect_and_consent(
        api_client, client, "jira", started["session_id"], status["token"]
    )
    assert callback.status_code == 200
    assert Connection.objects.get().status == Connection.Status.ACTIVE
    assert connection_access_token(user=user, service="jira").startswith("atlassian-access-")
    assert CliSession.objects.count() == 1


def test_parked_provider_tokens_are_wiped_once_the_confirmation_expires(
    oauth, api_client, client, time_machine
):
    # A CLI's first connection waits for a confirmation nobody gives: the encrypted
    # Atlassian tokens must not stay in the database for the day before the purge.
    started = connect(api_client)
    client.get(consent(started["authorization_url"]))
    state = OAuthState.objects.get()
    assert state.pending_tokens is not None
    time_machine.move_to(state.expires_at + timedelta(minutes=1))
    tasks.purge_expired_auth_records()
    state.refresh_from_db()
    assert state.pending_tokens is None and state.pending_identity is None
    assert state.status == OAuthState.Status.FAILED
    body = api_client.get(f"/auth/status/{started['state']}").json()
    assert body["error"]["code"] == "state_expired"


def test_polling_an_expired_confirmation_wipes_its_parked_tokens(
    oauth, api_client, client, time_machine
):
    started = connect(api_client)
    client.get(consent(started["authorization_url"]))
    time_machine.move_to(OAuthState.objects.get().expires_at + timedelta(seconds=1))
    assert api_client.get(f"/auth/status/{started['state']}").status_code == 410
    assert OAuthState.objects.get().pending_tokens is None
