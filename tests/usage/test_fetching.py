"""The scheduled fetch of OpenAI organisation usage, per admin key, against the fake admin
API on 127.0.0.1 through the real SDK: storing, re-reading without double counting, retries
of a busy provider, and a refused key marked invalid without stopping the others.

Tasks run eagerly (``apply``); the delay a retry asked for is read from Celery's
``task_retry`` signal.
"""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db.models import Sum

from config.celery import app as celery_app
from core.errors import ProviderUnavailable
from keys.models import ApiKey
from tests.fakes.openai_admin import USAGE_PATH, FakeOpenAIAdmin
from tests.keys.factories import ApiKeyFactory
from usage import tasks
from usage.models import UsageBucket, UsageDaily, UsageFetchState
from usage.services.fetching import usage_fetch_for_key

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 5, 12, 30, tzinfo=UTC)
MINI = "gpt-4o-mini-2024-07-18"


def admin_secret(n: int) -> str:
    return f"sk-admin-FakeOrgAdminKey{n:04d}000000000000000000000000Zz01"


GOOD = [admin_secret(n) for n in range(1, 6)]
BAD = admin_secret(99)  # the right shape, but the organisation revoked it


@pytest.fixture
def fake(settings):
    server = FakeOpenAIAdmin(set(GOOD)).start()
    settings.OPENAI_BASE_URL = server.base_url
    yield server
    server.stop()


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def admin_key(owner, secret=GOOD[0]):
    key = ApiKeyFactory(owner=owner, secret=secret)
    assert key.kind == ApiKey.Kind.ADMIN
    return key


def totals(owner):
    figures = ("input_tokens", "output_tokens", "cached_tokens", "requests", "cost_micros")
    buckets = UsageBucket.objects.filter(owner=owner).aggregate(*(Sum(f) for f in figures))
    daily = UsageDaily.objects.filter(owner=owner).aggregate(*(Sum(f) for f in figures))
    assert buckets == daily  # the rollup agrees with the buckets
    return buckets


def state_of(key):
    return UsageFetchState.objects.get(api_key=key)


def test_the_first_fetch_stores_the_last_two_days_hourly(fake, frozen, alice):
    key = admin_key(alice)
    fake.add_usage(NOW - timedelta(hours=3), model=MINI, input_tokens=100, output_tokens=40)
    fake.add_usage(NOW - timedelta(hours=30), model=MINI, input_tokens=7, requests=2)
    fake.add_usage(NOW - timedelta(days=3), model=MINI, input_tokens=999)  # before the window

    result = usage_fetch_for_key(api_key_id=key.pk)

    assert result.status == "ok" and result.buckets == 2
    stored = UsageBucket.objects.filter(owner=alice)
    starts = sorted(stored.values_list("bucket_start", "granularity"))
    assert starts == [
        (datetime(2026, 3, 4, 6, tzinfo=UTC), "hour"),
        (datetime(2026, 3, 5, 9, tzinfo=UTC), "hour"),
    ]
    assert totals(alice)["input_tokens__sum"] == 107
    state = state_of(key)
    assert (state.last_status, state.last_error, state.cursor) == ("ok", "", NOW)
    assert state.last_fetched_at == NOW


def test_three_overlapping_fetches_give_the_same_totals_and_a_late_report_updates_in_place(
    fake, frozen, alice
):
    key = admin_key(alice)
    fake.add_usage(NOW - timedelta(hours=5), model=MINI, input_tokens=100, output_tokens=10)
    fake.add_usage(NOW - timedelta(hours=20), model="gpt-4o", input_tokens=50, requests=3)

    usage_fetch_for_key(api_key_id=key.pk)
    first = totals(alice)
    frozen.shift(timedelta(hours=3))
    usage_fetch_for_key(api_key_id=key.pk)
    frozen.shift(timedelta(hours=3))
    usage_fetch_for_key(api_key_id=key.pk)

    assert totals(alice) == first
    assert UsageBucket.objects.filter(owner=alice).count() == 2
    # Each later call starts 48 h before the cursor (down to the hour): windows overlap.
    starts = [int(r.params["start_time"][0]) for r in fake.requests_to(USAGE_PATH)]
    cursors = [NOW, NOW + timedelta(hours=3)]
    assert starts[1:] == [int((c - timedelta(hours=48, minutes=30)).timestamp()) for c in cursors]

    # OpenAI reports more of an hour already stored: the bucket grows, nothing doubles.
    fake.add_usage(NOW - timedelta(hours=5), model=MINI, input_tokens=1, output_tokens=0)
    usage_fetch_for_key(api_key_id=key.pk)
    assert totals(alice)["input_tokens__sum"] == first["input_tokens__sum"] + 1
    assert UsageBucket.objects.filter(owner=alice).count() == 2


def test_a_429_is_retried_after_the_providers_retry_after(fake, frozen, alice, retry_delays):
    key = admin_key(alice)
    fake.add_usage(NOW - timedelta(hours=1), model=MINI, input_tokens=10)
    fake.retry_after = "37"
    fake.fail(USAGE_PATH, 429)

    result = tasks.fetch_usage_for_key.apply(args=[key.pk])

    assert result.successful() and result.get() == "ok"
    assert retry_delays == [37]
    assert len(fake.requests_to(USAGE_PATH)) == 2
    assert totals(alice)["input_tokens__sum"] == 10
    assert state_of(key).last_status == "ok"


def test_a_500_is_retried_with_backoff_and_jitter_then_succeeds(fake, frozen, alice, retry_delays):
    key = admin_key(alice)
    fake.add_usage(NOW - timedelta(hours=1), model=MINI, input_tokens=10)
    fake.fail(USAGE_PATH, 500)

    assert tasks.fetch_usage_for_key.apply(args=[key.pk]).get() == "ok"

    # No Retry-After: the first retry waits 10 s plus up to 10 s of jitter.
    assert len(retry_delays) == 1 and 10 <= retry_delays[0] <= 20
    assert totals(alice)["input_tokens__sum"] == 10


def test_a_provider_down_for_every_try_gives_up_after_five_retries(
    fake, frozen, alice, retry_delays
):
    key = admin_key(alice)
    fake.fail(USAGE_PATH, *[503] * 6)

    assert tasks.fetch_usage_for_key.apply(args=[key.pk]).get() == "error"

    assert len(retry_delays) == 5
    assert len(fake.requests_to(USAGE_PATH)) == 6
    state = state_of(key)
    assert state.last_status == "error" and state.cursor is None
    assert "answered HTTP 503" in state.last_error


def test_the_service_leaves_a_busy_provider_to_the_task(fake, frozen, alice):
    key = admin_key(alice)
    fake.fail(USAGE_PATH, 429)
    with pytest.raises(ProviderUnavailable):
        usage_fetch_for_key(api_key_id=key.pk)
    assert state_of(key).last_status == "error"


def test_one_refused_key_among_five_is_marked_invalid_and_the_others_are_fetched(
    fake, frozen, alice, bob, eager, django_capture_on_commit_callbacks
):
    good = [admin_key(alice if n % 2 else bob, secret) for n, secret in enumerate(GOOD)]
    bad = admin_key(alice, BAD)
    ApiKeyFactory(owner=alice)  # a project key: no usage to fetch
    fake.add_usage(NOW - timedelta(hours=2), model=MINI, input_tokens=10, requests=1)

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.fetch_usage_all.apply().get() == 6

    for key in good:
        assert state_of(key).last_status == "ok"
        key.refresh_from_db()
        assert key.status == ApiKey.Status.VALID
    state = state_of(bad)
    assert state.last_status == "invalid_key" and state.cursor is None
    bad.refresh_from_db()
    assert bad.status == ApiKey.Status.INVALID
    # Kay's words only: neither the key nor OpenAI's message (which quotes part of it).
    assert "rejected this admin key (HTTP 401)" in state.last_error
    assert BAD not in state.last_error and BAD[-4:] not in state.last_error
    assert "Incorrect API key" not in state.last_error
    # Each of alice's good keys stored the organisation's usage; bob's too, apart.
    assert UsageBucket.objects.filter(owner=bob).count() == 1
    assert UsageBucket.objects.filter(owner=alice).count() == 1

    # The next beat leaves the invalid key alone.
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.fetch_usage_all.apply().get() == 5


def test_a_key_that_is_not_an_openai_admin_key_is_skipped(fake, alice):
    project_key = ApiKeyFactory(owner=alice)
    result = usage_fetch_for_key(api_key_id=project_key.pk)
    assert result.status == "skipped"
    assert not UsageFetchState.objects.filter(api_key=project_key).exists()
    assert fake.requests_to(USAGE_PATH) == []


def test_beat_fans_out_the_usage_fetch_every_15_minutes(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["usage-fetch-all"]
    assert entry["task"] == tasks.fetch_usage_all.name
    assert entry["schedule"] == 15 * 60
    celery_app.loader.import_default_modules()
    assert {tasks.fetch_usage_all.name, tasks.fetch_usage_for_key.name} <= set(celery_app.tasks)
