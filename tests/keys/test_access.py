"""user_api_keys(): per-user keys for backend services, with the development .env fallback
(seed 002) only outside production."""

import pytest

from keys.access import MissingAPIKey, user_api_keys
from keys.models import KeyAuditEvent
from tests.keys.factories import ApiKeyFactory, ProjectFactory

ENV_GEMINI = "AIzaFromTheEnvironment000000000000000000"

# (DEBUG, DEPLOY_ENV) -> may fall back to the environment
MODES = [
    (True, "", True),
    (True, "render", True),
    (False, "", True),
    (False, "render", False),
]


@pytest.mark.parametrize(("debug", "deploy_env", "fallback"), MODES)
def test_a_stored_key_always_wins(settings, monkeypatch, alice, debug, deploy_env, fallback):
    settings.DEBUG, settings.DEPLOY_ENV = debug, deploy_env
    monkeypatch.setenv("GEMINI_API_KEY", ENV_GEMINI)
    stored = ApiKeyFactory(
        owner=alice, provider="gemini", secret="AIzaStoredForAlice0000000000000000000000"
    )
    with user_api_keys(alice) as keys:
        assert keys["gemini"] == stored.get_secret()
        assert keys.source("gemini") == "vault"


@pytest.mark.parametrize(("debug", "deploy_env", "fallback"), MODES)
def test_without_a_stored_key(settings, monkeypatch, alice, debug, deploy_env, fallback):
    settings.DEBUG, settings.DEPLOY_ENV = debug, deploy_env
    monkeypatch.setenv("GEMINI_API_KEY", ENV_GEMINI)
    with user_api_keys(alice) as keys:
        if fallback:
            assert keys["gemini"] == ENV_GEMINI
            assert keys.get("gemini") == ENV_GEMINI
        else:
            with pytest.raises(MissingAPIKey, match="No API key found for provider 'gemini'"):
                keys["gemini"]
            assert keys.get("gemini") is None
            assert "gemini" not in keys


def test_neither_stored_nor_in_the_environment(settings, monkeypatch, alice):
    settings.DEBUG, settings.DEPLOY_ENV = True, ""
    monkeypatch.delenv("EXA_API_KEY", raising=False)
    with user_api_keys(alice) as keys, pytest.raises(MissingAPIKey) as caught:
        keys["exa"]
    assert caught.value.status == 404 and "EXA_API_KEY" in str(caught.value)


def test_users_are_isolated(settings, alice, bob):
    settings.DEBUG, settings.DEPLOY_ENV = False, "render"
    a = ApiKeyFactory(owner=alice, provider="exa", secret="1a2b3c4d-0000-4000-8000-00000000000a")
    b = ApiKeyFactory(owner=bob, provider="exa", secret="1a2b3c4d-0000-4000-8000-00000000000b")
    with user_api_keys(alice.pk) as keys_a, user_api_keys(bob) as keys_b:
        assert keys_a["exa"] == a.get_secret()
        assert keys_b["exa"] == b.get_secret()


def test_project_default_then_users_default(alice):
    project = ProjectFactory(owner=alice)
    personal = ApiKeyFactory(owner=alice, provider="openai", is_default=True)
    scoped = ApiKeyFactory(owner=alice, provider="openai", project=project, is_default=True)
    with user_api_keys(alice, project=project) as keys:
        assert keys["openai"] == scoped.get_secret()
    with user_api_keys(alice) as keys:
        assert keys["openai"] == personal.get_secret()


def test_use_is_recorded_once_per_read_key_and_values_are_dropped_after(alice):
    used = ApiKeyFactory(owner=alice, provider="openai")
    unused = ApiKeyFactory(
        owner=alice, provider="anthropic", secret="sk-ant-api03-unused000000000000000000"
    )
    with user_api_keys(alice) as keys:
        assert "openai" in keys and "anthropic" in keys  # asking is not using
        keys["openai"]
        keys["openai"]
        assert "sk-" not in repr(keys)
    assert list(KeyAuditEvent.objects.filter(action="used").values_list("api_key", flat=True)) == [
        used.pk
    ]
    from keys.selectors import api_key_get

    assert api_key_get(owner=alice, key_id=used.pk).last_used_at is not None
    assert api_key_get(owner=alice, key_id=unused.pk).last_used_at is None
    assert len(keys) == 0


def test_base_urls_for_backend_clients(settings, alice):
    settings.OPENAI_BASE_URL = "https://proxy.example.com/v1"
    ApiKeyFactory(
        owner=alice,
        provider="openai_compatible",
        secret="local-token-123456",
        base_url="https://llm.example.com/v1",
    )
    with user_api_keys(alice) as keys:
        assert keys.base_url("openai_compatible") == "https://llm.example.com/v1"
        assert keys.base_url("openai") == "https://proxy.example.com/v1"
    assert not KeyAuditEvent.objects.exists()  # nothing was opened


def test_an_unreadable_stored_key_raises_a_clear_error(settings, alice):
    import os

    from keys.access import UnreadableKey

    ApiKeyFactory(owner=alice, provider="openai")
    settings.ENCRYPTION_KEYS = [os.urandom(32)]
    with user_api_keys(alice) as keys, pytest.raises(UnreadableKey, match="cannot be decrypted"):
        keys["openai"]


def test_checking_an_unreadable_key_again_names_it_and_logs_it_for_the_operator(
    settings, alice, alice_api, caplog
):
    """The same answer as using it: which key, what to do, and an ERROR line for whoever
    runs the server (the check again used to say less and log nothing)."""
    import os

    api_key = ApiKeyFactory(owner=alice, provider="openai", name="Prod")
    settings.ENCRYPTION_KEYS = [os.urandom(32)]
    response = alice_api.post(f"/api/keys/{api_key.pk}/validate")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "key_unreadable"
    assert "“Prod” cannot be decrypted" in error["message"]
    assert "ENCRYPTION_KEYS" in error["message"]
    assert f"stored key {api_key.pk} cannot be decrypted" in caplog.text


def test_an_unknown_provider_is_refused_without_repeating_it(alice):
    from core.errors import ApplicationError
    from keys.access import api_key_fetch
    from keys.services import Origin, api_key_check

    for attempt in (
        lambda: api_key_check(acting_user=alice, provider="<b>nope</b>", secret="sk-x"),
        lambda: api_key_fetch(user_id=alice.pk, provider="<b>nope</b>", origin=Origin("api")),
    ):
        with pytest.raises(ApplicationError) as caught:
            attempt()
        assert caught.value.code == "unknown_provider" and caught.value.status == 400
        assert "nope" not in caught.value.message
        assert "openai" in caught.value.fields["provider"][0]


def test_a_key_already_chosen_is_opened_and_audited_without_reading_the_others(alice):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from keys.access import user_api_key_chosen

    chosen = ApiKeyFactory(owner=alice, provider="openai")
    ApiKeyFactory(owner=alice, provider="gemini")
    with CaptureQueriesContext(connection) as ctx, user_api_key_chosen(chosen, owner=alice) as keys:
        assert list(keys) == ["openai"] and keys["openai"] == chosen.get_secret()
    assert [q["sql"].split()[0] for q in ctx.captured_queries] == ["INSERT"]  # the audit row
    assert KeyAuditEvent.objects.get(action="used").api_key_id == chosen.pk


def test_a_chosen_key_of_someone_else_or_an_admin_key_is_not_served(alice, bob):
    from keys.access import user_api_key_chosen
    from keys.models import ApiKey

    hers = ApiKeyFactory(owner=alice, provider="openai")
    his = ApiKeyFactory(owner=bob, provider="openai")
    admin = ApiKeyFactory(owner=alice, provider="openrouter", kind=ApiKey.Kind.ADMIN)
    for given in (his, admin):
        with user_api_key_chosen(given, owner=alice) as keys:
            assert keys.stored_key("openai") == hers  # alice's own keys, read afresh
            assert keys.stored_key("openrouter") is None
            assert keys["openai"] == hers.get_secret()
