"""A real Celery worker process runs a task through the configured broker."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def celery_worker_process(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
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
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while "ready." not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"worker did not start:\n{log.read_text()}")
        time.sleep(0.2)
    yield process
    process.terminate()
    process.wait(timeout=20)


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
