"""The callback refuses reused, expired, forged and cross-service states, and a denial."""

import pytest

from accounts.models import CliSession, User
from connections.models import Connection, OAuthState
from tests.connections.helpers import connect, consent

pytestmark = pytest.mark.django_db


def _nothing_created():
    assert not User.objects.filter(email="mia@example.com").exists()
    assert Connection.objects.count() == 0
    assert CliSession.objects.count() == 0


def test_forged_state_shows_an_error_page_and_creates_nothing(oauth, api_client, client):
    started = connect(api_client, "jira")
    path = consent(started["authorization_url"]).replace(started["state"], "forged-state-value")
    response = client.get(path)
    assert response.status_code == 400
    assert b"Connection failed" in response.content
    assert b"not valid" in response.content
    _nothing_created()
    # The real state is untouched and still pending.
    assert api_client.get(f"/auth/status/{started['state']}").json()["status"] == "pending"


def test_reused_state_is_refused(oauth, api_client, client):
    started = connect(api_client, "jira")
    path = consent(started["authorization_url"])
    assert client.get(path).status_code == 302
    Connection.objects.all().delete()
    again = client.get(path)
    assert again.status_code == 400
    assert b"already used" in again.content
    assert Connection.objects.count() == 0


def test_expired_state_is_refused(oauth, api_client, client, time_machine):
    started = connect(api_client, "jira")
    path = consent(started["authorization_url"])
    time_machine.move_to(OAuthState.objects.get().expires_at.timestamp() + 1)
    response = client.get(path)
    assert response.status_code == 400
    assert b"expired" in response.content
    _nothing_created()
    status = api_client.get(f"/auth/status/{started['state']}")
    assert status.status_code == 400
    assert status.json()["error"]["code"] == "state_expired"


def test_state_for_another_service_is_refused(oauth, api_client, client):
    started = connect(api_client, "jira")
    path = consent(started["authorization_url"]).replace("service=jira", "service=confluence")
    response = client.get(path)
    assert response.status_code == 400
    assert b"another service" in response.content
    _nothing_created()


def test_denied_consent_shows_a_clear_page_and_status_says_so(oauth, api_client, client):
    oauth.deny = True
    started = connect(api_client, "jira")
    response = client.get(consent(started["authorization_url"]))
    assert response.status_code == 400
    assert b"You declined access to Jira" in response.content
    _nothing_created()
    status = api_client.get(f"/auth/status/{started['state']}")
    assert status.status_code == 400
    assert status.json() == {
        "error": {
            "code": "access_denied",
            "message": "You declined access to Jira. Nothing was connected.",
        }
    }


def test_unknown_state_in_status_reveals_nothing(api_client):
    response = api_client.get("/auth/status/" + "x" * 43)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_unknown_session_id_reveals_nothing(oauth, api_client):
    assert api_client.get("/connections?session_id=kaysession_nope").status_code == 404
    response = api_client.post(
        "/connections/connect?service=jira", {"session_id": "kaysession_nope"}, format="json"
    )
    assert response.status_code == 404
    response = api_client.post(
        "/connections/disconnect?service=jira", {"session_id": "kaysession_nope"}, format="json"
    )
    assert response.status_code == 404


def test_missing_session_id_is_a_validation_error(api_client):
    response = api_client.get("/connections")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"session_id": ["This field is required."]}


def test_provider_failure_is_reported_without_secrets(oauth, api_client, client, settings):
    started = connect(api_client, "jira")
    settings.ATLASSIAN_CLIENT_SECRET = "wrong-secret"
    response = client.get(consent(started["authorization_url"]))
    assert response.status_code == 400
    assert b"Could not finish connecting Jira" in response.content
    assert b"wrong-secret" not in response.content
    assert b"atlassian-code" not in response.content
    _nothing_created()


def test_an_unknown_provider_error_is_not_echoed_on_the_page_or_to_the_cli(
    oauth, api_client, client
):
    # Whoever holds a state can craft the callback URL: its error must not become our text.
    started = connect(api_client, "jira")
    planted = "Call 555-0100 to unlock your account"
    response = client.get(
        "/connections/oauth/callback",
        {"service": "jira", "state": started["state"], "error": planted},
    )
    assert response.status_code == 400
    assert b"555-0100" not in response.content
    error = api_client.get(f"/auth/status/{started['state']}").json()["error"]
    assert error["code"] == "provider_error"
    assert "555-0100" not in error["message"]
