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
