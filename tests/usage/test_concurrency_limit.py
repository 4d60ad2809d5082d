"""The per-provider limit on fetches running at once: slots in the real cache (the database
cache here, Redis in production and when it is reachable), leases that expire, and a task
that finds no free slot waiting its turn without spending a retry."""

import threading
import time
from contextlib import ExitStack
from urllib.parse import urlparse

import pytest
import redis
from django.conf import settings as django_settings
from django.core.cache import cache

from tests.keys.factories import ApiKeyFactory
from usage import tasks
from usage.models import UsageFetchState
from usage.tasks import fetch_slot

LIMIT = 4


@pytest.fixture
def clean_cache(db):
    """The configured cache (the database's, or Redis when REDIS_URL is set), empty."""
    cache.clear()
    yield
    cache.clear()


def hold(provider, count, stack):
    """Enter ``count`` acquirers of ``provider``'s slots; how many got one."""
    return sum(stack.enter_context(fetch_slot(provider, limit=LIMIT)) for _ in range(count))


@pytest.mark.usefixtures("clean_cache")
def test_n_plus_three_acquirers_get_n_slots_and_a_released_slot_is_free_again():
    with ExitStack() as stack:
        assert hold("openai", LIMIT + 3, stack) == LIMIT
        # Another provider's slots are its own.
        assert hold("anthropic", 1, stack) == 1
    with ExitStack() as stack:
        assert hold("openai", LIMIT, stack) == LIMIT  # all freed when their holders left


@pytest.mark.usefixtures("clean_cache")
def test_a_killed_workers_slot_frees_itself_when_its_lease_expires():
    # Holders that never leave (their worker was killed), on one-second leases; real time
    # passes, as Redis expires keys by its own clock.
    stack = ExitStack()
    for _ in range(LIMIT):
        assert stack.enter_context(fetch_slot("openai", limit=LIMIT, lease=1))
    with fetch_slot("openai", limit=LIMIT) as slot:
        assert not slot
    time.sleep(2.1)  # the database cache keeps expiry times to the second
    with fetch_slot("openai", limit=LIMIT) as slot:
        assert slot
        # A holder whose lease expired and was taken over frees nothing but its own.
        stack.close()
        assert hold("openai", LIMIT, ExitStack()) == LIMIT - 1


@pytest.fixture
def redis_cache(settings):
    """The production cache backend, when a Redis server is reachable."""
    url = django_settings.REDIS_URL or "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {urlparse(url).netloc}")
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "kay-test-slots",
        }
    }
    cache.clear()
    yield
    cache.clear()


def test_concurrent_acquirers_on_redis_get_exactly_n_slots(redis_cache):
    acquirers = LIMIT + 3
    got: list[bool] = []
    lock = threading.Lock()
    ready = threading.Barrier(acquirers)
    leave = threading.Event()

    def acquire():
        ready.wait()
        with fetch_slot("openai", limit=LIMIT) as slot:
            with lock:
                got.append(slot)
            leave.wait(10)

    threads = [threading.Thread(target=acquire) for _ in range(acquirers)]
    for thread in threads:
        thread.start()
    while True:
        with lock:
            if len(got) == acquirers:
                break
    leave.set()
    for thread in threads:
        thread.join()
    assert sorted(got) == [False] * 3 + [True] * LIMIT


@pytest.mark.usefixtures("clean_cache")
def test_a_task_finding_no_free_slot_queues_itself_again_without_spending_a_retry(
    settings, alice, monkeypatch
):
    settings.USAGE_FETCH_CONCURRENCY = LIMIT
    key = ApiKeyFactory(owner=alice, provider="openai", secret="sk-admin-" + "A" * 40)
    queued = []
    monkeypatch.setattr(
        tasks.fetch_usage_for_key,
        "apply_async",
        lambda args, countdown: queued.append((args, countdown)),
    )
    with ExitStack() as stack:
        hold("openai", LIMIT, stack)
        result = tasks.fetch_usage_for_key.apply(args=[key.pk])
        assert result.get() == "waiting"
        assert result.state == "SUCCESS"  # not a retry, not a failure
        [(args, countdown)] = queued
        assert args == [key.pk, 1] and tasks.WAIT <= countdown <= 2 * tasks.WAIT
        # Having waited its fill, it leaves the key to the next beat.
        assert tasks.fetch_usage_for_key.apply(args=[key.pk, tasks.WAITS]).get() == "no_slot"
    assert not UsageFetchState.objects.filter(api_key=key).exists()  # nothing fetched
