"""A real Celery worker process runs the usage fan-out: beat's ``fetch_usage_all`` queues one
fetch per admin key after commit, and the worker fetches each from the fake OpenAI admin
API on 127.0.0.1 into the test database, never more at once than the per-provider limit
(``USAGE_FETCH_CONCURRENCY``) however many threads it has: the others wait for a slot.

PostgreSQL only: the worker is another process, so it must reach the test database over
the network (SQLite's test database lives in the test process's memory)."""

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tests.accounts.factories import UserFactory
from tests.fakes.openai_admin import USAGE_PATH, FakeOpenAIAdmin
from tests.helpers.processes import running
from tests.keys.factories import ApiKeyFactory
from usage import tasks
from usage.models import UsageBucket, UsageFetchState

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the worker process needs PostgreSQL"
    ),
]

MINI = "gpt-4o-mini-2024-07-18"
SECRETS = [f"sk-admin-FakeOrgAdminKey{n:04d}000000000000000000000000Zz01" for n in range(1, 5)]
LIMIT = 2  # the worker's USAGE_FETCH_CONCURRENCY, below its 4 threads


def database_url() -> str:
    """The test database, as the worker's ``DATABASE_URL``."""
    db = connection.settings_dict
    return (
        f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )


@pytest.fixture
def fake():
    server = FakeOpenAIAdmin(set(SECRETS)).start()
    now = timezone.now()
    server.add_usage(now - timedelta(hours=3), model=MINI, input_tokens=100, output_tokens=7)
    server.add_usage(now - timedelta(hours=20), model="gpt-4o", input_tokens=50, requests=2)
    server.delay = 0.5  # fetches overlap, so the limit has something to hold back
    yield server
    server.stop()


@pytest.fixture
def worker(fake, tmp_path):
    log = tmp_path / "worker.log"
    with running(
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--pool=threads",
        "--concurrency=4",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        log=log,
        env={
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url(),
            "OPENAI_BASE_URL": fake.base_url,
            "USAGE_FETCH_CONCURRENCY": str(LIMIT),
        },
        ready=lambda: "ready." in log.read_text(),
    ):
        yield log


def wait_for_fetches(keys, *, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = UsageFetchState.objects.filter(api_key__in=keys).exclude(last_status="never")
        if states.count() == len(keys):
            return {state.api_key_id: state.last_status for state in states}
        time.sleep(0.3)
    pytest.fail("the worker did not fetch every key in time")


def test_a_real_worker_fetches_every_admin_key_of_the_fan_out_within_the_limit(
    worker, fake, alice, bob, charlie
):
    owners = (alice, bob, charlie, UserFactory())
    keys = [
        ApiKeyFactory(owner=owner, secret=secret)
        for owner, secret in zip(owners, SECRETS, strict=True)
    ]
    ApiKeyFactory(owner=alice)  # a project key: nothing to fetch, so not queued

    assert tasks.fetch_usage_all() == 4

    statuses = wait_for_fetches(keys)
    assert statuses == {key.pk: "ok" for key in keys}
    assert len(fake.requests_to(USAGE_PATH)) == 4  # one page each
    assert fake.max_in_flight <= LIMIT
    for owner in owners:
        stored = UsageBucket.objects.filter(owner=owner)
        assert sorted(stored.values_list("model", "input_tokens")) == [
            ("gpt-4o", 50),
            (MINI, 100),
        ]
    log = worker.read_text()
    assert "usage.tasks.fetch_usage_for_key" in log
    assert not any(secret in log for secret in SECRETS)
