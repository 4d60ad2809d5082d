"""OpenAI admin keys (sk-admin-…) in the vault (issue 10, point 1): checked against an
administration endpoint (they cannot call /v1/models), stored with kind "admin", shown as
"OpenAI admin key", and never handed out as the provider's key for model calls."""

import importlib

import pytest
from django.apps import apps as django_apps

from core import crypto
from keys.access import MissingAPIKey, api_key_fetch, user_api_keys
from keys.models import ApiKey
from keys.services import Origin
from tests.keys.conftest import VALID, server_auth
from tests.keys.factories import ApiKeyFactory, ProjectFactory

ADMIN = VALID["openai_admin"]
ADMIN_SECRET_2 = "sk-admin-AnotherAdminKey00000000000000000000Cd34"


def create(client, **body):
    payload = {"provider": "openai", "name": "org usage", "key": ADMIN, **body}
    return client.post("/api/keys", payload, format="json")


def test_an_admin_key_is_checked_on_the_admin_api_and_stored_as_an_admin_key(
    alice_api, alice, fake_providers
):
    response = create(alice_api)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["kind"] == "admin" and body["status"] == "valid"
    assert ADMIN not in response.content.decode()
    # Admin keys cannot call /v1/models: the check asked the administration API only.
    assert [r["path"] for r in fake_providers.requests] == ["/v1/organization/projects"]
    assert fake_providers.requests[0]["headers"]["authorization"] == f"Bearer {ADMIN}"
    assert ApiKey.objects.get().kind == ApiKey.Kind.ADMIN


def test_an_admin_key_the_admin_api_rejects_is_not_saved(alice_api, fake_providers):
    response = create(alice_api, key=ADMIN[:-4] + "XXXX")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_key"
    assert "OpenAI rejected this key (HTTP 401)" in response.json()["error"]["message"]
    assert not ApiKey.objects.exists()


def test_a_project_key_is_an_api_key_checked_on_models(alice_api, fake_providers):
    response = create(alice_api, name="prod", key=VALID["openai"])
    assert response.status_code == 201, response.content
    assert response.json()["kind"] == "api"
    assert [r["path"] for r in fake_providers.requests] == ["/v1/models"]


def test_the_key_pages_call_it_an_openai_admin_key(alice_api, alice_browser, fake_providers):
    admin_id = create(alice_api).json()["id"]
    project_key_id = create(alice_api, name="prod", key=VALID["openai"]).json()["id"]
    detail = alice_browser.get(f"/dashboard/keys/{admin_id}/").content.decode()
    assert "OpenAI admin key" in detail
    assert ADMIN not in detail
    listing = alice_browser.get("/dashboard/keys/").content.decode()
    assert listing.count("OpenAI admin key") == 1
    other = alice_browser.get(f"/dashboard/keys/{project_key_id}/").content.decode()
    assert "OpenAI admin key" not in other


def test_an_admin_key_added_first_leaves_the_default_to_the_next_key(alice_api, fake_providers):
    admin = create(alice_api).json()
    project_key = create(alice_api, name="prod", key=VALID["openai"]).json()
    assert admin["is_default"] is False
    assert project_key["is_default"] is True


def test_user_api_keys_never_offers_an_admin_key(settings, monkeypatch, alice):
    settings.DEBUG, settings.DEPLOY_ENV = False, "render"
    ApiKeyFactory(owner=alice, provider="openai", secret=ADMIN, is_default=True)
    with user_api_keys(alice) as keys:
        assert "openai" not in keys
        with pytest.raises(MissingAPIKey):
            keys["openai"]


def test_beside_an_admin_key_the_project_key_answers(alice):
    project = ProjectFactory(owner=alice)
    ApiKeyFactory(owner=alice, provider="openai", secret=ADMIN, is_default=True)
    ApiKeyFactory(owner=alice, provider="openai", secret=ADMIN_SECRET_2, project=project)
    llm = ApiKeyFactory(owner=alice, provider="openai")  # neither default nor in a project
    for scope in (None, project):
        with user_api_keys(alice, project=scope) as keys:
            assert keys["openai"] == llm.get_secret()


def test_an_admin_key_in_the_environment_is_not_a_fallback(settings, monkeypatch, alice):
    settings.DEBUG, settings.DEPLOY_ENV = True, ""
    monkeypatch.setenv("OPENAI_API_KEY", ADMIN)
    with user_api_keys(alice) as keys:
        assert "openai" not in keys


def test_the_fetch_api_never_hands_out_an_admin_key(api_client, alice):
    ApiKeyFactory(owner=alice, provider="openai", secret=ADMIN, is_default=True)
    response = api_client.post(
        "/api/keys/fetch",
        {"user_id": alice.pk, "provider": "openai"},
        format="json",
        **server_auth(),
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "missing_api_key"
    with pytest.raises(MissingAPIKey):
        api_key_fetch(user_id=alice.pk, provider="openai", origin=Origin("backend"))


def test_rotating_to_an_admin_key_and_back_changes_its_kind(alice_api, alice, fake_providers):
    key = create(alice_api, name="prod", key=VALID["openai"]).json()
    rotated = alice_api.patch(f"/api/keys/{key['id']}", {"key": ADMIN}, format="json")
    assert rotated.status_code == 200, rotated.content
    assert rotated.json()["kind"] == "admin"
    back = alice_api.patch(f"/api/keys/{key['id']}", {"key": VALID["openai"]}, format="json")
    assert back.json()["kind"] == "api"
    assert ApiKey.objects.get().kind == ApiKey.Kind.API


def test_saving_only_some_fields_with_a_new_secret_still_sets_the_kind(alice):
    key = ApiKeyFactory(owner=alice, provider="openai")
    key.secret = ADMIN
    key.save(update_fields=["secret"])
    assert ApiKey.objects.get().kind == ApiKey.Kind.ADMIN


def test_other_providers_keys_are_never_admin_keys(alice):
    key = ApiKeyFactory(owner=alice, provider="openai_compatible", secret="sk-admin-local-token")
    assert key.kind == ApiKey.Kind.API and key.provider_label == "OpenAI-compatible"


def test_the_migration_marks_admin_keys_stored_before_it(alice, bob):
    """Keys stored before ``kind`` existed: the admin ones are found by opening each
    OpenAI key whose mask could be an admin key's; an unreadable one stays "api"."""
    migration = importlib.import_module("keys.migrations.0006_apikey_kind")
    admin = ApiKeyFactory(owner=alice, provider="openai", secret=ADMIN)
    legacy = ApiKeyFactory(owner=alice, provider="openai", secret="sk-a" + "b" * 44)
    other_owner = ApiKeyFactory(owner=bob, provider="openai", secret=ADMIN_SECRET_2)
    broken = ApiKeyFactory(owner=bob, provider="openai", secret=ADMIN_SECRET_2[:-1] + "9")
    token = crypto.encrypt(ADMIN, aad=b"kay|keys.apikey|secret|0")  # sealed for another row
    ApiKey.objects.filter(pk=broken.pk).update(secret=type(broken.secret)(token))
    ApiKey.objects.update(kind=ApiKey.Kind.API)

    migration.mark_admin_keys(django_apps, None)

    kinds = dict(ApiKey.objects.values_list("pk", "kind"))
    assert kinds == {admin.pk: "admin", legacy.pk: "api", other_owner.pk: "admin", broken.pk: "api"}
