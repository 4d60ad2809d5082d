"""Seed 003 "How Service Connection Works", steps 1-6, against the fake Atlassian server."""

import re
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from django.conf import settings

from accounts.models import AtlassianProfile, CliSession, RefreshToken, User
from connections.models import (
    AccessibleResource,
    Connection,
    KaySession,
    OAuthState,
)
from core.fields import Ciphertext, decrypt_field
from tests.connections.factories import AccessibleResourceFactory, ConnectionFactory, cli_tokens_for
from tests.connections.helpers import bearer, connect, connect_and_consent, consent, first_login
from tests.helpers.queries import assert_flat_queries

pytestmark = pytest.mark.django_db


def test_connect_returns_the_seed_body_and_an_atlassian_authorize_url(oauth, api_client):
    body = connect(api_client, "jira")
    assert set(body) == {
        "service",
        "session_id",
        "authorization_url",
        "state",
        "message",
        "user_code",
    }
    assert re.fullmatch(r"[B-Z]{4}-[B-Z]{4}", body["user_code"])
    assert body["service"] == "jira"
    assert body["session_id"].startswith("kaysession_")
    assert body["message"] == "Please visit the authorization URL to connect jira"
    url = urlsplit(body["authorization_url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{oauth.atlassian_auth_url}/authorize"
    query = parse_qs(url.query)
    assert query["audience"] == ["api.atlassian.com"]
    assert query["prompt"] == ["consent"]
    assert query["response_type"] == ["code"]
    assert query["state"] == [body["state"]]
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == ["http://testserver/connections/oauth/callback?service=jira"]
    scopes = query["scope"][0].split()
    assert {"read:jira-work", "offline_access", "read:me"} <= set(scopes)
    # Credentials are unguessable and stored only as hashes.
    assert len(body["state"]) >= 43 and len(body["session_id"]) >= 43
    assert not KaySession.objects.filter(key_hash=body["session_id"]).exists()
    assert not OAuthState.objects.filter(state_hash=body["state"]).exists()


def test_first_connection_signs_the_cli_in(oauth, api_client, client):
    started, callback = connect_and_consent(api_client, client, "jira")
    assert callback.status_code == 200
    assert b"Jira connected" in callback.content
    assert b"return to the terminal" in callback.content
    assert b"signed in to Kay as <strong>mia@example.com</strong>" in callback.content

    status = api_client.get(f"/auth/status/{started['state']}").json()
    assert set(status) == {"status", "account_id", "token", "refresh_token", "message"}
    assert status["status"] == "completed"
    assert status["message"] == "Authorization completed successfully"
    assert status["account_id"] == oauth.me["account_id"]

    user = User.objects.get(email="mia@example.com")
    assert user.name == "Mia Krystof"
    claims = jwt.decode(status["token"], settings.SECRET_KEY, algorithms=["HS256"], issuer="kay")
    assert claims["sub"] == str(user.pk)
    assert claims["account_id"] == oauth.me["account_id"]
    session = CliSession.objects.get(user=user)
    assert claims["sid"] == str(session.public_id)
    assert claims["exp"] - claims["iat"] == settings.CLI_SESSION_EXPIRES_IN
    # Refresh token: random hex, stored only as its SHA-256.
    assert len(status["refresh_token"]) == 64
    stored = RefreshToken.objects.get(session=session)
    assert stored.token_hash != status["refresh_token"]
    assert (stored.expires_at - stored.created_at).total_seconds() == pytest.approx(
        settings.CLI_REFRESH_TOKEN_EXPIRES_IN, abs=2
    )

    connection = Connection.objects.get(user=user, service="jira")
    assert isinstance(connection.access_token, Ciphertext)
    assert connection.access_token.startswith("kay:v")
    assert decrypt_field(connection, "access_token").startswith("atlassian-access-")
    assert decrypt_field(connection, "refresh_token").startswith("atlassian-refresh-")
    assert "offline_access" in connection.scopes
    profile = AtlassianProfile.objects.get(user=user)
    assert (profile.account_type, profile.account_status) == ("atlassian", "active")
    assert profile.picture == oauth.me["picture"]
    sites = AccessibleResource.objects.filter(connection=connection).order_by("name")
    assert [s.name for s in sites] == ["awesome-jira", "super-product"]

    # Step 6: the session token works on protected endpoints.
    me = api_client.get("/auth/me", **bearer(status["token"]))
    assert me.status_code == 200
    assert me.json() == {
        "message": "User information",
        "data": {
            "account_id": oauth.me["account_id"],
            "name": "Mia Krystof",
            "email": "mia@example.com",
            "picture": oauth.me["picture"],
            "resources": [
                {
                    "id": "3942d640-b74e-11e8-96f8-529269fb1459",
                    "name": "awesome-jira",
                    "url": "https://awesome-jira.atlassian.net",
                    "scopes": ["read:jira-user"],
                    "avatarUrl": "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/trophy.png",
                },
                {
                    "id": "eff705b1-5cd8-40d1-ac46-9a9516cbc527",
                    "name": "super-product",
                    "url": "https://super-product.atlassian.net",
                    "scopes": ["read:jira-user"],
                    "avatarUrl": "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/cup.png",
                },
            ],
        },
    }


def test_status_is_pending_until_the_callback(oauth, api_client):
    started = connect(api_client, "jira")
    response = api_client.get(f"/auth/status/{started['state']}")
    assert response.status_code == 200
    assert response.json() == {"status": "pending", "message": "Authorization not yet completed"}


def test_tokens_are_handed_out_only_once(oauth, api_client, client):
    started, _ = first_login(api_client, client)
    again = api_client.get(f"/auth/status/{started['state']}")
    assert again.status_code == 410
    assert again.json()["error"]["code"] == "already_collected"
    assert "token" not in again.json()


def test_tokens_cannot_be_collected_after_ten_minutes(oauth, api_client, client, time_machine):
    started, callback = connect_and_consent(api_client, client)
    assert callback.status_code == 200
    time_machine.move_to(OAuthState.objects.get().completed_at.timestamp() + 601)
    response = api_client.get(f"/auth/status/{started['state']}")
    assert response.status_code == 410
    assert "refresh_token" not in response.json()


def test_more_services_join_the_same_session_without_new_tokens(oauth, api_client, client):
    started, status = first_login(api_client, client, "jira")
    session_id = started["session_id"]
    listing = api_client.get(f"/connections?session_id={session_id}").json()
    assert listing == {"connections": {"jira": True, "confluence": False, "bitbucket": False}}

    token = status["token"]
    second, callback = connect_and_consent(api_client, client, "confluence", session_id, token)
    assert second["session_id"] == session_id
    assert callback.status_code == 200
    bitbucket, callback = connect_and_consent(api_client, client, "bitbucket", session_id, token)
    assert callback.status_code == 200
    assert CliSession.objects.count() == 1  # no new tokens
    polled = api_client.get(f"/auth/status/{second['state']}").json()
    assert polled["status"] == "completed" and "token" not in polled

    listing = api_client.get(f"/connections?session_id={session_id}").json()
    assert listing == {"connections": {"jira": True, "confluence": True, "bitbucket": True}}
    user = User.objects.get(email="mia@example.com")
    confluence = Connection.objects.get(user=user, service="confluence")
    assert [r.name for r in confluence.resources.all()] == ["Site name"]
    assert decrypt_field(
        Connection.objects.get(user=user, service="bitbucket"), "access_token"
    ).startswith("bitbucket-access-")

    gone = api_client.post(
        "/connections/disconnect?service=jira", {"session_id": session_id}, format="json"
    )
    assert gone.status_code == 200
    assert gone.json() == {
        "service": "jira",
        "connected": False,
        "message": "Successfully disconnected from jira",
    }
    assert not Connection.objects.filter(user=user, service="jira").exists()
    assert not AccessibleResource.objects.filter(connection__service="jira").exists()
    listing = api_client.get(f"/connections?session_id={session_id}").json()
    assert listing["connections"]["jira"] is False
    # The session token still works: only the service was disconnected.
    assert api_client.get("/auth/me", **bearer(status["token"])).status_code == 200


def test_bitbucket_alone_signs_the_cli_in_with_the_same_atlassian_identity(
    oauth, api_client, client
):
    started, status = first_login(api_client, client, "bitbucket")
    assert status["account_id"] == oauth.me["account_id"]
    user = User.objects.get(email="mia@example.com")
    assert Connection.objects.get(user=user).service == "bitbucket"
    # Connecting Jira later from a new CLI install finds the same user by account id; the
    # browser must be signed in as that user (no password: by emailed code) to confirm.
    started = connect(api_client, "jira")
    confirm_url = client.get(consent(started["authorization_url"]))["Location"]
    assert client.get(confirm_url)["Location"].startswith("/accounts/login/code/?next=")
    client.force_login(user)
    assert client.post(confirm_url, {"action": "link"}).status_code == 200
    assert api_client.get(f"/auth/status/{started['state']}").json()["token"]
    assert User.objects.count() == 1
    assert Connection.objects.filter(user=user).count() == 2


def test_logout_ends_the_session(oauth, api_client, client):
    _, status = first_login(api_client, client)
    response = api_client.post("/auth/logout", **bearer(status["token"]))
    assert response.status_code == 200
    assert response.json() == {"message": "Logged out successfully"}
    assert api_client.get("/auth/me", **bearer(status["token"])).status_code == 401
    refresh = api_client.post(
        "/auth/refresh", {"refresh_token": status["refresh_token"]}, format="json"
    )
    assert refresh.status_code == 401


def test_unknown_service_is_a_clear_400(oauth, api_client):
    response = api_client.post("/connections/connect?service=kyg", {}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_service"


def test_unconfigured_provider_says_not_available_without_the_operators_hint(settings, api_client):
    settings.ATLASSIAN_CLIENT_ID = ""
    response = api_client.post("/connections/connect?service=jira", {}, format="json")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "provider_not_configured"
    assert "not available on this server" in error["message"]
    assert "ATLASSIAN_CLIENT_ID" not in error["message"]


def test_connect_is_rate_limited(oauth, api_client):
    for _ in range(20):
        assert (
            api_client.post("/connections/connect?service=jira", {}, format="json").status_code
            == 200
        )
    response = api_client.post("/connections/connect?service=jira", {}, format="json")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert "Retry-After" in response.headers


def test_unauthenticated_api_calls_get_401_with_bearer_challenge(api_client):
    response = api_client.get("/auth/me")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "not_authenticated"


def test_consent_is_real_http_with_pkce(oauth, api_client, client):
    """The fake rejects a wrong PKCE verifier, so a success proves the verifier matched."""
    started = connect(api_client, "jira")
    callback = client.get(consent(started["authorization_url"]))
    assert callback.status_code == 302  # to the confirmation page: the code was accepted
    exchange = next(r for r in oauth.token_requests if r["grant_type"] == "authorization_code")
    assert exchange["code_verifier"]


def test_status_errors_are_logged_without_the_state(oauth, api_client, client, caplog):
    started, _ = first_login(api_client, client)
    caplog.clear()
    with caplog.at_level("INFO"):
        assert api_client.get(f"/auth/status/{started['state']}").status_code == 410
        assert api_client.get("/auth/status/" + "y" * 43).status_code == 404
    assert started["state"] not in caplog.text and "y" * 43 not in caplog.text
    assert "answered 410" in caplog.text


def test_connect_accepts_a_null_or_missing_body(oauth, api_client):
    assert (
        api_client.post(
            "/connections/connect?service=jira", {"session_id": None}, format="json"
        ).status_code
        == 200
    )
    assert api_client.post("/connections/connect?service=confluence").status_code == 200


def test_me_query_count_does_not_grow_with_sites(api_client, alice):
    connection = ConnectionFactory(user=alice)
    api_client.credentials(**bearer(cli_tokens_for(alice).token))
    measured = assert_flat_queries(
        api_client, "/auth/me", lambda: AccessibleResourceFactory(connection=connection)
    )
    assert len(measured.response.json()["data"]["resources"]) == 50
