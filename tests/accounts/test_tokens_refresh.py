"""CLI session JWTs and refresh-token rotation with family revocation (RFC 9700 §4.14.2)."""

import jwt as pyjwt
import pytest
from django.core.cache import cache

from accounts.models import CliSession, RefreshToken
from accounts.tokens import cli_session_revoke
from tests.connections.factories import cli_tokens_for
from tests.connections.helpers import bearer

pytestmark = pytest.mark.django_db


def refresh(client, token):
    return client.post("/auth/refresh", {"refresh_token": token}, format="json")


def test_refresh_rotates_the_pair(api_client, alice):
    pair = cli_tokens_for(alice)
    response = refresh(api_client, pair.refresh_token)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "refresh_token", "message"}
    assert body["message"] == "Token refreshed successfully"
    assert body["refresh_token"] != pair.refresh_token
    assert response.headers["Cache-Control"] == "no-store"
    assert (
        api_client.get("/auth/me", **bearer(body["token"])).json()["data"]["email"] == alice.email
    )
    # The old one is spent, the new one works.
    assert refresh(api_client, body["refresh_token"]).status_code == 200


def test_reusing_a_rotated_token_revokes_the_whole_family(api_client, alice):
    pair = cli_tokens_for(alice)
    newest = refresh(api_client, pair.refresh_token).json()
    reused = refresh(api_client, pair.refresh_token)
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "refresh_token_reused"
    assert reused.headers["WWW-Authenticate"].startswith("Bearer")
    # The newest refresh token and the newest session token stop working too.
    assert refresh(api_client, newest["refresh_token"]).status_code == 401
    me = api_client.get("/auth/me", **bearer(newest["token"]))
    assert me.status_code == 401
    assert me.json()["error"]["message"] == "This sign-in was ended. Sign in again."
    assert CliSession.objects.get().revoked_reason == "refresh_token_reuse"


def test_an_expired_refresh_token_is_refused(api_client, alice, time_machine, settings):
    pair = cli_tokens_for(alice)
    time_machine.move_to(RefreshToken.objects.get().expires_at.timestamp() + 1)
    response = refresh(api_client, pair.refresh_token)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "expired"


def test_the_family_has_an_absolute_lifetime(api_client, alice, time_machine, settings):
    settings.CLI_SESSION_ABSOLUTE_LIFETIME = 3 * 24 * 3600
    pair = cli_tokens_for(alice)
    start = CliSession.objects.get().created_at.timestamp()
    for day in (1, 2):
        time_machine.move_to(start + day * 24 * 3600)
        pair_body = refresh(api_client, pair.refresh_token).json()
        pair = type("P", (), {"refresh_token": pair_body["refresh_token"]})
    time_machine.move_to(start + 3 * 24 * 3600 + 1)
    response = refresh(api_client, pair.refresh_token)
    assert response.status_code == 401


def test_an_unknown_refresh_token_is_refused(api_client, alice):
    response = refresh(api_client, "a" * 64)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_session_token_expires_after_30_minutes(api_client, alice, time_machine, settings):
    time_machine.move_to("2026-01-01T10:00:00Z")
    pair = cli_tokens_for(alice)
    time_machine.move_to("2026-01-01T10:29:00Z")
    assert api_client.get("/auth/me", **bearer(pair.token)).status_code == 200
    time_machine.move_to("2026-01-01T10:30:01Z")
    response = api_client.get("/auth/me", **bearer(pair.token))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_expired"


def test_a_tampered_token_is_refused(api_client, alice):
    pair = cli_tokens_for(alice)
    head, payload, signature = pair.token.split(".")
    forged = f"{head}.{payload}.{signature[::-1]}"
    assert api_client.get("/auth/me", **bearer(forged)).status_code == 401


def test_revocation_is_seen_at_once_even_with_a_warm_cache(api_client, alice):
    pair = cli_tokens_for(alice)
    assert api_client.get("/auth/me", **bearer(pair.token)).status_code == 200  # cached active
    cli_session_revoke(session=CliSession.objects.get(), reason="test")
    assert api_client.get("/auth/me", **bearer(pair.token)).status_code == 401


def test_revocation_holds_after_the_cache_expires(api_client, alice):
    pair = cli_tokens_for(alice)
    cli_session_revoke(session=CliSession.objects.get(), reason="test")
    cache.clear()
    assert api_client.get("/auth/me", **bearer(pair.token)).status_code == 401


def test_refresh_is_rate_limited(api_client, alice):
    for _ in range(30):
        refresh(api_client, "b" * 64)
    response = refresh(api_client, "b" * 64)
    assert response.status_code == 429


def test_a_foreign_bearer_value_is_called_invalid(api_client, alice):
    """Not one of our JWTs: 401 saying the token is not valid, not "not provided"."""
    response = api_client.get("/auth/me", HTTP_AUTHORIZATION="Bearer some-server-secret")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_logout_revokes_only_that_family(api_client, alice):
    first, second = cli_tokens_for(alice), cli_tokens_for(alice)
    assert api_client.post("/auth/logout", **bearer(first.token)).status_code == 200
    assert api_client.get("/auth/me", **bearer(first.token)).status_code == 401
    assert api_client.get("/auth/me", **bearer(second.token)).status_code == 200


def test_stored_refresh_tokens_are_hashes(alice):
    pair = cli_tokens_for(alice)
    assert not RefreshToken.objects.filter(token_hash=pair.refresh_token).exists()
    assert RefreshToken.objects.get().token_hash != pair.refresh_token


@pytest.mark.parametrize("algorithm", ["none", "HS512"])
def test_a_token_signed_with_another_algorithm_is_refused(api_client, alice, algorithm, settings):
    """The algorithm is pinned to HS256: ``alg: none`` or HS512 with the same key fail."""
    pair = cli_tokens_for(alice)
    claims = pyjwt.decode(pair.token, options={"verify_signature": False})
    key = None if algorithm == "none" else settings.SECRET_KEY
    forged = pyjwt.encode(claims, key, algorithm=algorithm)
    response = api_client.get("/auth/me", **bearer(forged))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_a_refresh_rate_limit_says_when_to_retry(api_client, alice):
    for _ in range(30):
        refresh(api_client, "b" * 64)
    response = refresh(api_client, "b" * 64)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert 0 < int(response.headers["Retry-After"]) <= 60
