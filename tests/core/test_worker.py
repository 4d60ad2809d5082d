"""A real Celery worker process runs a task through the configured broker."""

import pytest
from django.conf import settings

from tests.helpers.processes import running


@pytest.fixture
def celery_worker_process(tmp_path):
    log = tmp_path / "worker.log"
    with running(
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--pool=solo",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        log=log,
        env={"DJANGO_SETTINGS_MODULE": "config.settings"},
        ready=lambda: "ready." in log.read_text(),
    ) as process:
        yield process


@pytest.mark.worker
def test_a_task_round_trips_through_a_real_worker(celery_worker_process):
    from core.tasks import ping

    result = ping.apply_async()
    assert result.get(timeout=30) == "pong"
    expected = "redis" if settings.REDIS_URL else "sqla"
    assert settings.CELERY_BROKER_URL.startswith(expected)


@pytest.mark.worker
@pytest.mark.django_db
def test_health_sees_the_running_worker(celery_worker_process, alice_api, settings):
    settings.HEALTH_WORKER_TIMEOUT = 20
    body = alice_api.get("/health").json()
    assert body["services"]["worker"]["status"] == "healthy"
    assert body["status"] == "healthy"


@pytest.mark.worker
def test_the_worker_log_goes_through_the_redacting_filter(celery_worker_process, tmp_path):
    """Celery swaps the root handlers for its own unless it is told otherwise; a message for
    a task it does not know is logged whole, arguments included."""
    from config.celery import app
    from core.tasks import ping

    secret = "sk-live-" + "q" * 24
    app.send_task("kay.no_such_task", args=[secret])
    assert ping.apply_async().get(timeout=30) == "pong"  # the solo pool took both, in order
    text = (tmp_path / "worker.log").read_text()
    assert "kay.no_such_task" in text
    assert secret not in text
    assert "[REDACTED]" in text
