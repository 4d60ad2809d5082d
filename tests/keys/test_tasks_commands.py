"""The nightly re-validation and the import_env_keys command."""

from io import StringIO

from django.core.management import call_command

from keys.models import ApiKey, KeyAuditEvent
from keys.tasks import revalidate_key, revalidate_keys
from tests.keys.conftest import VALID
from tests.keys.factories import ApiKeyFactory


def test_nightly_revalidation_marks_revoked_keys_invalid(
    alice, fake_providers, django_capture_on_commit_callbacks, monkeypatch
):
    good = ApiKeyFactory(owner=alice, secret=VALID["openai"], status="unverified")
    revoked = ApiKeyFactory(
        owner=alice, secret="sk-proj-RevokedRevokedRevoked000000000", status="valid"
    )
    queued = []
    monkeypatch.setattr(
        revalidate_key, "apply_async", lambda args, countdown: queued.append(args[0])
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert revalidate_keys() == 2
    assert sorted(queued) == sorted([good.pk, revoked.pk])
    for key_id in queued:  # what the worker runs
        revalidate_key(key_id)
    good.refresh_from_db()
    revoked.refresh_from_db()
    assert good.status == "valid" and good.last_validated_at
    assert revoked.status == "invalid" and "rejected" in revoked.status_detail
    event = KeyAuditEvent.objects.filter(api_key=revoked, action="validated").get()
    assert event.source == "schedule" and event.actor is None


def test_an_unreachable_provider_does_not_downgrade_a_valid_key(alice, fake_providers):
    key = ApiKeyFactory(owner=alice, secret=VALID["openai"], status="valid")
    fake_providers.fail_status = 503
    assert revalidate_key(key.pk) == "unverified"
    key.refresh_from_db()
    assert key.status == "valid" and "503" in key.status_detail


def test_a_deleted_key_is_skipped(db):
    assert revalidate_key(999999) is None


def test_tasks_take_ids_not_secrets(
    alice, fake_providers, monkeypatch, django_capture_on_commit_callbacks
):
    ApiKeyFactory(owner=alice)
    sent = []
    monkeypatch.setattr(revalidate_key, "apply_async", lambda args, countdown: sent.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        revalidate_keys()
    assert all(isinstance(arg, int) for args in sent for arg in args)


def test_import_env_keys(alice, fake_providers, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", VALID["openai"])
    monkeypatch.setenv("GEMINI_API_KEY", VALID["gemini"])
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-revokedrevokedrevoked0000")
    for name in (
        "OPENROUTER_API_KEY",
        "MISTRAL_API_KEY",
        "GROQ_API_KEY",
        "EXA_API_KEY",
        "COPILOTKIT_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    out, err = StringIO(), StringIO()
    call_command("import_env_keys", "--user", "ALICE@example.com", stdout=out, stderr=err)
    stored = {k.provider: k for k in ApiKey.objects.filter(owner=alice)}
    assert set(stored) == {"openai", "gemini"}
    assert stored["gemini"].get_secret() == VALID["gemini"]
    assert "ANTHROPIC_API_KEY: not imported" in err.getvalue()
    assert VALID["openai"] not in out.getvalue() + err.getvalue()
    call_command("import_env_keys", "--user", "alice@example.com", stdout=out, stderr=err)
    assert ApiKey.objects.filter(owner=alice).count() == 2  # idempotent


def test_the_nightly_check_is_scheduled():
    from django.conf import settings

    from config.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["keys-revalidate-nightly"]
    assert entry["task"] == revalidate_keys.name
    app.loader.import_default_modules()
    assert revalidate_keys.name in app.tasks and revalidate_key.name in app.tasks
    assert entry["schedule"].hour == {3}


def test_revalidation_refuses_a_base_url_that_now_points_inside(alice, fake_providers, settings):
    """The base URL was checked when saved; its host may resolve elsewhere since (DNS
    rebinding) or have been saved where private addresses were allowed. The nightly check
    must not send the key into the private network."""
    key = ApiKeyFactory(
        owner=alice,
        provider="openai_compatible",
        secret=VALID["openai_compatible"],
        base_url=fake_providers.base_url + "/v1",
        status="valid",
    )
    settings.KEYS_ALLOW_PRIVATE_BASE_URLS = False
    assert revalidate_key(key.pk) == "bad_request"
    assert fake_providers.requests == []
    key.refresh_from_db()
    assert key.status == "valid"
