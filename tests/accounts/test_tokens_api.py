"""Personal API tokens (seed 000 "API Token Authentication" and token versions)."""

import itertools

import jwt
import pytest
from django.conf import settings

from accounts.models import ApiToken
from accounts.tokens import api_token_create, cli_session_start
from tests.connections.helpers import bearer
from tests.helpers.queries import assert_flat_queries

pytestmark = pytest.mark.django_db


def create(client, name="laptop"):
    response = client.post("/api/token", {"name": name}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_token_has_the_seed_claims(alice_api, alice):
    body = create(alice_api)
    claims = jwt.decode(body["token"], settings.SECRET_KEY, algorithms=["HS256"], issuer="kay")
    assert claims["sub"] == str(alice.pk)
    assert claims["kayUserId"] == f"kay/{alice.pk}"
    assert claims["version"] == 3
    assert claims["exp"] - claims["iat"] == 30 * 24 * 3600
    assert body["api_token"]["name"] == "laptop"
    # Only the hash of the token's id is stored, never the token.
    row = ApiToken.objects.get()
    assert row.jti_hash != claims["jti"] and len(row.jti_hash) == 64
    assert body["token"] not in str(ApiToken.objects.values().get())


def test_token_works_as_bearer_and_records_last_use(api_client, alice_api, alice):
    body = create(alice_api)
    assert ApiToken.objects.get().last_used_at is None
    response = api_client.get("/api/me", **bearer(body["token"]))
    assert response.status_code == 200
    assert response.json()["email"] == alice.email
    assert ApiToken.objects.get().last_used_at is not None


def test_listing_shows_tokens_without_secrets(alice_api):
    created = create(alice_api)
    listing = alice_api.get("/api/tokens").json()["tokens"]
    assert [t["name"] for t in listing] == ["laptop"]
    assert "token" not in listing[0] and "jti_hash" not in listing[0]
    assert created["token"] not in str(listing)


def test_revoked_token_stops_working(api_client, alice_api):
    body = create(alice_api)
    assert alice_api.delete(f"/api/tokens/{body['api_token']['id']}").status_code == 204
    response = api_client.get("/api/me", **bearer(body["token"]))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_revoked"
    assert alice_api.get("/api/tokens").json()["tokens"] == []


def test_raising_the_version_invalidates_older_tokens(api_client, alice_api, settings):
    body = create(alice_api)
    settings.API_TOKEN_VERSION = 4
    response = api_client.get("/api/me", **bearer(body["token"]))
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "token_version_outdated"
    assert "Sign in again" in error["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    fresh = create(alice_api, "new")
    assert jwt.decode(fresh["token"], options={"verify_signature": False})["version"] == 4
    assert api_client.get("/api/me", **bearer(fresh["token"])).status_code == 200


def test_expired_token_is_refused(api_client, alice_api, time_machine):
    time_machine.move_to("2026-01-01T00:00:00Z")
    body = create(alice_api)
    time_machine.move_to("2026-02-01T00:00:01Z")
    response = api_client.get("/api/me", **bearer(body["token"]))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_expired"


def test_bob_cannot_list_or_revoke_alices_tokens(alice_api, bob_api, api_client):
    body = create(alice_api)
    assert bob_api.get("/api/tokens").json()["tokens"] == []
    assert bob_api.delete(f"/api/tokens/{body['api_token']['id']}").status_code == 404
    assert api_client.get("/api/me", **bearer(body["token"])).status_code == 200


def test_token_creation_requires_sign_in(api_client):
    response = api_client.post("/api/token", {}, format="json")
    assert response.status_code == 401


def test_logout_with_an_api_token_revokes_it(api_client, alice_api):
    body = create(alice_api)
    assert api_client.post("/auth/logout", **bearer(body["token"])).status_code == 200
    assert api_client.get("/api/me", **bearer(body["token"])).status_code == 401


def test_tokens_page_creates_shows_once_and_revokes(alice_browser, bob, client):
    page = alice_browser.get("/dashboard/tokens/")
    assert page.status_code == 200
    assert b"No API tokens yet" in page.content
    created = alice_browser.post("/dashboard/tokens/", {"name": "VS Code"})
    assert created.status_code == 200
    token = created.context["new_token"]
    assert token.encode() in created.content
    assert created["Cache-Control"] == "no-store"
    again = alice_browser.get("/dashboard/tokens/")
    assert b"VS Code" in again.content and token.encode() not in again.content
    row = ApiToken.objects.get()
    response = alice_browser.post(f"/dashboard/tokens/{row.pk}/revoke", follow=True)
    assert b"Revoked" in response.content
    assert ApiToken.objects.get().revoked_at is not None


def test_tokens_page_answers_another_users_token_with_404(alice_api, bob_browser):
    create(alice_api)
    row = ApiToken.objects.get()
    assert bob_browser.post(f"/dashboard/tokens/{row.pk}/revoke").status_code == 404
    assert ApiToken.objects.get().revoked_at is None


def test_tokens_list_query_count_does_not_grow(alice_api, alice):
    names = itertools.count()
    measured = assert_flat_queries(
        alice_api, "/api/tokens", lambda: api_token_create(user=alice, name=f"t{next(names)}")
    )
    assert len(measured.response.json()["tokens"]) == 50
    assert measured.touching("accounts_apitoken") == (1, 1)


def test_tokens_page_query_count_is_flat_in_tokens_and_cli_sign_ins(alice_browser, alice):
    names = itertools.count()

    def add_row():
        n = next(names)
        api_token_create(user=alice, name=f"token {n}")
        cli_session_start(user=alice, origin="device", client_name=f"laptop {n}")

    page = assert_flat_queries(alice_browser, "/dashboard/tokens/", add_row).response.content
    assert b"token 49" in page and b"laptop 49" in page


def test_an_api_token_cannot_mint_new_tokens(api_client, alice_api):
    body = create(alice_api)
    response = api_client.post("/api/token", {"name": "x"}, format="json", **bearer(body["token"]))
    assert response.status_code == 403
    assert ApiToken.objects.count() == 1


def test_a_cli_session_can_create_a_token(api_client, alice):
    from tests.connections.factories import cli_tokens_for

    pair = cli_tokens_for(alice)
    response = api_client.post("/api/token", {"name": "ci"}, format="json", **bearer(pair.token))
    assert response.status_code == 201


def test_revoked_tokens_are_purged_a_day_later(alice):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import ApiToken
    from accounts.tokens import api_token_create, api_token_revoke, auth_records_purge

    old, _ = api_token_create(user=alice, name="old")
    api_token_revoke(token=old)
    ApiToken.objects.filter(pk=old.pk).update(revoked_at=timezone.now() - timedelta(days=2))
    recent, _ = api_token_create(user=alice, name="recent")
    api_token_revoke(token=recent)
    kept, _ = api_token_create(user=alice, name="kept")
    assert auth_records_purge()["api_tokens"] == 1
    assert set(ApiToken.objects.values_list("name", flat=True)) == {"recent", "kept"}


def test_a_browser_extensions_bearer_header_does_not_break_the_pages(alice_browser, alice):
    """Pages sign in by session cookie only: an Authorization header someone else's
    extension adds is not read there (the API, which does read it, answers 401)."""
    extension = {"HTTP_AUTHORIZATION": "Bearer not-a-kay-token"}
    assert alice_browser.get("/dashboard/", **extension).status_code == 200
    renamed = alice_browser.post(
        "/accounts/settings/", {"action": "profile", "name": "Al"}, **extension
    )
    assert renamed.status_code == 302
    alice.refresh_from_db()
    assert alice.name == "Al"
    assert alice_browser.get("/api/me", **extension).status_code == 401
