"""Each pytest-xdist worker uses its own Redis database (tests/redis_per_worker.py)."""

import os

import pytest
from django.conf import settings

from tests.redis_per_worker import _per_worker


def test_worker_n_gets_database_n_plus_one_of_the_same_server():
    assert _per_worker("redis://127.0.0.1:6379/0", "gw0") == "redis://127.0.0.1:6379/1"
    assert _per_worker("redis://:pw@redis:6380", "gw3") == "redis://:pw@redis:6380/4"


@pytest.mark.skipif(
    not (settings.REDIS_URL and os.environ.get("PYTEST_XDIST_WORKER")),
    reason="only under pytest-xdist with Redis",
)
def test_this_worker_reads_its_own_database_from_the_settings():
    worker = os.environ["PYTEST_XDIST_WORKER"]
    assert settings.REDIS_URL.endswith(f"/{int(worker.removeprefix('gw')) + 1}")
    assert settings.CELERY_BROKER_URL == settings.REDIS_URL
