"""manage.py sync_models, the Celery task and the shipped snapshot."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from models_catalog import snapshot, tasks
from models_catalog.models import Model, ModelEndpoint, SyncRun
from tests.fakes.openrouter import MODELS, PROVIDERS
from tests.fakes.server import DATA

pytestmark = pytest.mark.django_db


def _recorded(snapshot):
    return {m["id"] for m in json.loads((DATA / MODELS[snapshot]).read_text())["data"]}


NEWEST = len(_recorded("2026-08-19"))  # models the fake serves
SHIPPED = 414  # models in the shipped snapshot (all of 2026-08-19)


def _run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("sync_models", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_sync_models_shows_progress_and_a_summary(fake_openrouter):
    out, err = _run("--concurrency", "4")
    assert "Fetching endpoints: 100%" in err and f"{NEWEST}/{NEWEST}" in err  # the tqdm bar
    assert f"models     {NEWEST} added, 0 updated, 0 deactivated, 0 unchanged" in out
    assert "failed     0" in out
    out, _ = _run()
    assert f"models     0 added, 0 updated, 0 deactivated, {NEWEST} unchanged" in out


def test_sync_models_lists_failures(fake_openrouter):
    fake_openrouter.fail("/models/openai/gpt-4o/endpoints", 400)
    out, _ = _run("--no-progress")
    assert "failed     1" in out and "endpoints of openai/gpt-4o" in out


def test_a_malformed_payload_is_a_clear_command_error(fake_openrouter):
    fake_openrouter.malformed_models = True
    with pytest.raises(CommandError, match="invalid JSON"):
        _run("--no-progress")
    assert not Model.objects.exists()


def test_from_file_loads_a_saved_models_response_offline(settings):
    settings.OPENROUTER_BASE_URL = "http://127.0.0.1:9/unreachable"
    out, _ = _run(
        "--from-file",
        str(DATA / MODELS["2026-05-20"]),
        "--providers-file",
        str(DATA / PROVIDERS),
        "--no-progress",
    )
    count = len(_recorded("2026-05-20"))
    assert f"models     {count} added" in out
    assert ModelEndpoint.objects.filter(inferred=True).count() == count
    assert (
        ModelEndpoint.objects.get(model__openrouter_id="openai/gpt-4o").provider.headquarters
        == "US"
    )


def test_from_file_reports_an_unreadable_file(tmp_path):
    broken = tmp_path / "models.json"
    broken.write_text("{not json")
    with pytest.raises(CommandError, match="Cannot read"):
        _run("--from-file", str(broken))


def test_write_backup_then_load_it_on_an_empty_catalog(fake_openrouter, tmp_path):
    target = tmp_path / "backup.json"
    out, _ = _run(
        "--no-progress", "--write-backup", "--backup-path", str(target), "--as-of", "2026-08-19"
    )
    assert f"Wrote {NEWEST} models" in out
    document = json.loads(target.read_text())
    assert document["data_as_of"] == "2026-08-19" and document["total_models"] == NEWEST
    endpoints = ModelEndpoint.objects.filter(is_active=True).count()

    Model.objects.all().delete()
    out, _ = _run("--from-backup", "--if-empty", "--backup-path", str(target), "--no-progress")
    assert f"models     {NEWEST} added" in out
    assert ModelEndpoint.objects.filter(is_active=True).count() == endpoints
    out, _ = _run("--from-backup", "--if-empty", "--backup-path", str(target))
    assert "nothing to do" in out


def test_the_shipped_snapshot_is_the_real_2026_data_and_loads():
    document = json.loads(snapshot.BACKUP_PATH.read_text())
    assert document["data_as_of"] == "2026-08-19"
    assert "2026-08-19" in document["note"] and "2026-05-20" in document["note"]
    shipped = {m["id"] for p in document["providers"] for m in p["models"]}
    assert len(shipped) == document["total_models"] == SHIPPED
    assert _recorded("2026-08-19") <= shipped  # the test excerpt is part of the same listing
    out, _ = _run("--from-backup", "--if-empty", "--no-progress")
    assert f"models     {SHIPPED} added" in out
    assert Model.objects.get(openrouter_id="anthropic/claude-opus-4.8").prompt_price is not None


def test_the_models_page_says_when_and_where_from_the_catalog_was_synced(alice_browser):
    _run("--from-backup", "--no-progress")
    body = alice_browser.get("/dashboard/models/").content.decode()
    assert "Last synced" in body and "from the catalog snapshot shipped with Kay." in body
    assert "openrouter-models-by-provider-backup.json" not in body  # an internal file name


def test_the_celery_task_runs_the_sync(fake_openrouter):
    result = tasks.sync_models.apply().get()
    assert result["counts"]["models"]["added"] == NEWEST
    assert SyncRun.objects.get(pk=result["run"]).status == "succeeded"


def test_beat_runs_the_sync_every_six_hours(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["models-catalog-sync"]
    assert entry["task"] == "models_catalog.tasks.sync_models"
    assert entry["schedule"].hour == {0, 6, 12, 18}
