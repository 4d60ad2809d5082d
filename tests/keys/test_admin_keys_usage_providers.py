"""Anthropic admin keys (sk-ant-admin…) and OpenRouter management keys in the vault
(issue 10, point 2): each is checked where it can be (Anthropic's Admin API; OpenRouter's
``/key``, whose answer is the only thing telling a management key), stored with kind
"admin", named for what it is, and never handed out as an LLM key."""

import pytest

from keys.access import MissingAPIKey, api_key_fetch, user_api_keys
from keys.models import ApiKey
from keys.services import Origin, api_key_revalidate
from tests.keys.conftest import VALID
from tests.keys.factories import ApiKeyFactory

ANTHROPIC_ADMIN = "sk-ant-admin01-ValidAnthropicAdminKey0000000000000000000"
MANAGEMENT = "sk-or-v1-" + "b2" * 32


@pytest.fixture
def fake(fake_providers):
    fake_providers.valid_keys |= {ANTHROPIC_ADMIN, MANAGEMENT}
    fake_providers.management_keys.add(MANAGEMENT)
    return fake_providers


def create(client, provider, key, name="usage"):
    return client.post("/api/keys", {"provider": provider, "name": name, "key": key}, format="json")


def test_an_anthropic_admin_key_is_checked_on_the_admin_api_and_stored_as_admin(alice_api, fake):
    response = create(alice_api, "anthropic", ANTHROPIC_ADMIN)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["kind"] == "admin" and body["status"] == "valid"
    assert body["is_default"] is False  # it cannot answer for Anthropic
    assert ANTHROPIC_ADMIN not in response.content.decode()
    # Admin keys cannot call /v1/models: only the Admin API was asked.
    assert [r["path"] for r in fake.requests] == ["/v1/organizations/api_keys"]
    headers = fake.requests[0]["headers"]
    assert headers["x-api-key"] == ANTHROPIC_ADMIN
    assert headers["anthropic-version"] == "2023-06-01"


def test_an_anthropic_admin_key_the_admin_api_rejects_is_not_saved(alice_api, fake):
    response = create(alice_api, "anthropic", ANTHROPIC_ADMIN[:-4] + "XXXX")
    assert response.status_code == 400
    assert "Anthropic rejected this key (HTTP 401)" in response.json()["error"]["message"]
    assert not ApiKey.objects.exists()


def test_an_anthropic_api_key_is_still_checked_on_models(alice_api, fake):
    response = create(alice_api, "anthropic", VALID["anthropic"])
    assert response.status_code == 201, response.content
    assert response.json()["kind"] == "api" and response.json()["is_default"] is True
    assert [r["path"] for r in fake.requests] == ["/v1/models"]


def test_an_openrouter_management_key_is_told_by_its_key_answer(alice_api, fake):
    response = create(alice_api, "openrouter", MANAGEMENT)
    assert response.status_code == 201, response.content
    assert response.json()["kind"] == "admin" and response.json()["is_default"] is False
    regular = create(alice_api, "openrouter", VALID["openrouter"], name="chat")
    assert regular.json()["kind"] == "api" and regular.json()["is_default"] is True


def test_rotating_an_openrouter_key_to_a_management_key_changes_its_kind(alice_api, fake):
    key = create(alice_api, "openrouter", VALID["openrouter"]).json()
    rotated = alice_api.patch(f"/api/keys/{key['id']}", {"key": MANAGEMENT}, format="json")
    assert rotated.status_code == 200, rotated.content
    assert rotated.json()["kind"] == "admin"
    back = alice_api.patch(f"/api/keys/{key['id']}", {"key": VALID["openrouter"]}, format="json")
    assert back.json()["kind"] == "api"


def test_revalidating_a_management_key_stored_as_an_api_key_makes_it_admin(alice, fake):
    key = ApiKeyFactory(owner=alice, provider="openrouter", secret=MANAGEMENT)
    assert key.kind == ApiKey.Kind.API  # stored before Kay asked OpenRouter
    assert api_key_revalidate(api_key=key, origin=Origin("schedule")).admin
    key.refresh_from_db()
    assert key.kind == ApiKey.Kind.ADMIN and key.provider_label == "OpenRouter management key"


def test_the_key_pages_name_each_admin_key_for_what_it_is(alice_api, alice_browser, fake):
    anthropic_id = create(alice_api, "anthropic", ANTHROPIC_ADMIN).json()["id"]
    management_id = create(alice_api, "openrouter", MANAGEMENT, name="mgmt").json()["id"]
    page = alice_browser.get(f"/dashboard/keys/{anthropic_id}/").content.decode()
    assert "Anthropic admin key" in page and ANTHROPIC_ADMIN not in page
    page = alice_browser.get(f"/dashboard/keys/{management_id}/").content.decode()
    assert "OpenRouter management key" in page and MANAGEMENT not in page


def test_an_anthropic_admin_key_is_admin_by_its_prefix_even_unchecked(alice):
    key = ApiKeyFactory(owner=alice, provider="anthropic", secret=ANTHROPIC_ADMIN)
    assert key.kind == ApiKey.Kind.ADMIN and key.provider_label == "Anthropic admin key"


@pytest.mark.parametrize(
    ("provider", "secret", "kind"),
    [
        ("anthropic", ANTHROPIC_ADMIN, None),
        ("openrouter", MANAGEMENT, ApiKey.Kind.ADMIN),  # as the check stored it
    ],
)
def test_neither_admin_key_is_ever_offered_for_model_calls(settings, alice, provider, secret, kind):
    settings.DEBUG, settings.DEPLOY_ENV = False, "render"
    extra = {"kind": kind} if kind else {}
    ApiKeyFactory(owner=alice, provider=provider, secret=secret, is_default=True, **extra)
    assert ApiKey.objects.get().kind == ApiKey.Kind.ADMIN
    with user_api_keys(alice) as keys:
        assert provider not in keys
    with pytest.raises(MissingAPIKey):
        api_key_fetch(user_id=alice.pk, provider=provider, origin=Origin("backend"))


def test_an_anthropic_admin_key_in_the_environment_is_not_a_fallback(settings, monkeypatch, alice):
    settings.DEBUG, settings.DEPLOY_ENV = True, ""
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_ADMIN)
    with user_api_keys(alice) as keys:
        assert "anthropic" not in keys
