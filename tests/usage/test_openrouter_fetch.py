"""OpenRouter spend against the fake ``/key`` and ``/activity`` on 127.0.0.1: every key's
own spend (its account figures and today's bucket), a management key's activity per model
and complete day, counted once when both report the same money; faults."""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine

from core.errors import ProviderUnavailable
from keys.access import resolve_key
from keys.models import ApiKey
from tests.fakes.openrouter_usage import ACTIVITY_PATH, KEY_PATH, FakeOpenRouterUsage
from tests.keys.factories import ApiKeyFactory
from tests.usage.test_fetching import totals
from usage import tasks
from usage.models import CostSource, ProviderAccount, Source, UsageBucket, UsageFetchState
from usage.providers import openrouter
from usage.services.fetching import usage_fetch_for_key

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 5, 12, 30, tzinfo=UTC)
TODAY = datetime(2026, 3, 5, tzinfo=UTC)
MINI = "openai/gpt-4o-mini"
SONNET = "anthropic/claude-sonnet-4.5"


def secret(n: int) -> str:
    return "sk-or-v1-" + f"{n:02x}" * 32


KEYS = [secret(n) for n in range(1, 6)]
MANAGEMENT = secret(0xEE)
BAD = secret(0x99)


@pytest.fixture
def fake(settings):
    server = FakeOpenRouterUsage(TODAY.date()).start()
    for key in KEYS:
        server.add_key(key)
    server.add_key(MANAGEMENT, management=True)
    settings.OPENROUTER_BASE_URL = server.base_url
    settings.KEYS_VALIDATION_TIMEOUT = 2.0
    yield server
    server.stop()


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def stored_key(owner, value=KEYS[0], *, management=False):
    kind = ApiKey.Kind.ADMIN if management else ApiKey.Kind.API
    return ApiKeyFactory(owner=owner, provider="openrouter", secret=value, kind=kind)


def key_spend(owner):
    return UsageBucket.objects.filter(owner=owner, model="", external_key_id__startswith="vault:")


def test_a_keys_spend_is_stored_as_its_account_and_todays_bucket(fake, frozen, alice):
    fake.keys[KEYS[0]].usage_daily = 0.1234567
    fake.keys[KEYS[0]].usage_monthly = 12.5
    fake.keys[KEYS[0]].limit, fake.keys[KEYS[0]].limit_remaining = 50, 37.5
    fake.keys[KEYS[0]].limit_reset = "monthly"
    key = stored_key(alice)

    assert usage_fetch_for_key(api_key_id=key.pk).status == "ok"

    account = ProviderAccount.objects.get(api_key=key)
    assert (account.limit_micros, account.remaining_micros) == (50_000_000, 37_500_000)
    assert (account.spent_today_micros, account.spent_month_micros) == (123_457, 12_500_000)
    assert account.limit_reset == "monthly"
    bucket = UsageBucket.objects.get(owner=alice)
    assert (bucket.source, bucket.provider, bucket.model) == (Source.OPENROUTER, "openrouter", "")
    assert (bucket.bucket_start, bucket.granularity) == (TODAY, "day")
    assert (bucket.cost_micros, bucket.cost_source) == (123_457, CostSource.PROVIDER)
    assert bucket.external_key_id == f"vault:{key.pk}" and bucket.api_key_id == key.pk
    assert fake.requests_to(ACTIVITY_PATH) == 0  # a regular key cannot read activity


def test_todays_spend_grows_in_place_and_two_keys_never_share_a_bucket(fake, frozen, alice):
    first, second = stored_key(alice), stored_key(alice, KEYS[1])
    fake.keys[KEYS[0]].usage_daily, fake.keys[KEYS[1]].usage_daily = 1.0, 2.0
    for key in (first, second):
        usage_fetch_for_key(api_key_id=key.pk)
    fake.keys[KEYS[0]].usage_daily = 1.5  # later the same day
    frozen.shift(timedelta(minutes=15))
    usage_fetch_for_key(api_key_id=first.pk)

    assert key_spend(alice).count() == 2
    assert totals(alice)["cost_micros__sum"] == 3_500_000


def test_a_management_key_stores_the_accounts_activity_per_model_and_day(
    fake, frozen, alice, catalog
):
    key = stored_key(alice, MANAGEMENT, management=True)
    yesterday = date(2026, 3, 4)
    # Two endpoints of one model on one day are one bucket; today is not complete yet.
    fake.add_activity(MANAGEMENT, yesterday, model=MINI, usd=0.015, prompt=50, completion=125)
    fake.add_activity(
        MANAGEMENT, yesterday, model=MINI, usd=0.005, prompt=10, completion=5, provider="Azure"
    )
    fake.add_activity(MANAGEMENT, yesterday, model=SONNET, usd=1.25, prompt=1000, requests=4)
    fake.add_activity(MANAGEMENT, date(2026, 3, 3), model=MINI, usd=0.3, prompt=7)
    fake.add_activity(MANAGEMENT, date(2026, 2, 1), model=MINI, usd=9.0)  # before the window

    assert usage_fetch_for_key(api_key_id=key.pk).status == "ok"

    rows = {
        (b.bucket_start.date(), b.model): b
        for b in UsageBucket.objects.filter(owner=alice, source=Source.OPENROUTER)
    }
    assert set(rows) == {(date(2026, 3, 3), MINI), (yesterday, MINI), (yesterday, SONNET)}
    mini = rows[(yesterday, MINI)]
    assert (mini.input_tokens, mini.output_tokens, mini.requests) == (60, 130, 2)
    # The provider's cost (0.015 + 0.005 dollars), never the catalog's estimate.
    assert (mini.cost_micros, mini.cost_source) == (20_000, CostSource.PROVIDER)
    assert rows[(yesterday, SONNET)].cost_micros == 1_250_000
    assert not key_spend(alice).exists()  # a management key spends nothing itself
    assert ProviderAccount.objects.filter(api_key=key).exists()


def test_activity_replaces_the_key_spend_of_complete_days_so_nothing_counts_twice(
    fake, frozen, alice
):
    chat = stored_key(alice)
    management = stored_key(alice, MANAGEMENT, management=True)
    fake.keys[KEYS[0]].usage_daily = 0.75  # yesterday's spend, seen during yesterday
    frozen.move_to(NOW - timedelta(days=1))
    usage_fetch_for_key(api_key_id=chat.pk)
    frozen.move_to(NOW)
    fake.keys[KEYS[0]].usage_daily = 0.25  # today's so far
    usage_fetch_for_key(api_key_id=chat.pk)
    assert totals(alice)["cost_micros__sum"] == 1_000_000

    # The account's activity reports yesterday's 0.75 per model: it stands for yesterday.
    fake.add_activity(MANAGEMENT, date(2026, 3, 4), model=MINI, usd=0.5)
    fake.add_activity(MANAGEMENT, date(2026, 3, 4), model=SONNET, usd=0.25)
    usage_fetch_for_key(api_key_id=management.pk)

    assert totals(alice)["cost_micros__sum"] == 1_000_000  # 0.75 once, plus today's 0.25
    assert list(key_spend(alice).values_list("bucket_start", flat=True)) == [TODAY]
    # Fetching both again changes nothing.
    for key in (chat, management, chat):
        usage_fetch_for_key(api_key_id=key.pk)
    assert totals(alice)["cost_micros__sum"] == 1_000_000


def test_three_overlapping_fetches_give_the_same_totals_and_a_late_day_updates_in_place(
    fake, frozen, alice
):
    key = stored_key(alice, MANAGEMENT, management=True)
    fake.add_activity(MANAGEMENT, date(2026, 3, 4), model=MINI, usd=0.5, prompt=100)
    usage_fetch_for_key(api_key_id=key.pk)
    first = totals(alice)
    for _ in range(2):
        frozen.shift(timedelta(hours=3))
        usage_fetch_for_key(api_key_id=key.pk)
    assert totals(alice) == first

    fake.add_activity(MANAGEMENT, date(2026, 3, 4), model=MINI, usd=0.25, prompt=1)  # late
    usage_fetch_for_key(api_key_id=key.pk)
    assert totals(alice)["cost_micros__sum"] == 750_000
    assert UsageBucket.objects.filter(owner=alice).count() == 1


def test_a_429_is_retried_after_the_providers_retry_after(fake, frozen, alice, retry_delays):
    key = stored_key(alice)
    fake.retry_after = "23"
    fake.fail(KEY_PATH, 429)
    assert tasks.fetch_usage_for_key.apply(args=[key.pk]).get() == "ok"
    assert retry_delays == [23]


def test_a_500_on_the_activity_then_success_is_retried(fake, frozen, alice, retry_delays):
    key = stored_key(alice, MANAGEMENT, management=True)
    fake.add_activity(MANAGEMENT, date(2026, 3, 4), model=MINI, usd=0.5)
    fake.fail(ACTIVITY_PATH, 500)
    assert tasks.fetch_usage_for_key.apply(args=[key.pk]).get() == "ok"
    assert len(retry_delays) == 1 and 10 <= retry_delays[0] <= 20
    assert totals(alice)["cost_micros__sum"] == 500_000


def test_a_timeout_is_recorded_in_kays_words(fake, frozen, alice, monkeypatch):
    key = stored_key(alice)
    monkeypatch.setattr(openrouter, "TIMEOUT", 0.2)
    fake.delay = 0.5
    with pytest.raises(ProviderUnavailable):
        usage_fetch_for_key(api_key_id=key.pk)
    state = UsageFetchState.objects.get(api_key=key)
    assert state.last_error == "OpenRouter did not send the key's spend in time."


def test_a_refused_key_is_marked_invalid_and_the_owner_told_in_kays_words(fake, frozen, alice):
    key = stored_key(alice, BAD)
    assert usage_fetch_for_key(api_key_id=key.pk).status == "invalid_key"
    key.refresh_from_db()
    assert key.status == ApiKey.Status.INVALID
    state = UsageFetchState.objects.get(api_key=key)
    assert state.last_status == "invalid_key"
    assert state.last_error.startswith("OpenRouter rejected this key (HTTP 401)")
    assert "No auth credentials" not in state.last_error and BAD[-8:] not in state.last_error
    assert not UsageBucket.objects.exists()


def test_each_owner_stores_only_their_own_keys_spend(fake, frozen, alice, bob):
    fake.keys[KEYS[0]].usage_daily = 1.0
    usage_fetch_for_key(api_key_id=stored_key(alice).pk)
    assert UsageBucket.objects.filter(owner=alice).count() == 1
    assert not UsageBucket.objects.filter(owner=bob).exists()
    assert not ProviderAccount.objects.filter(api_key__owner=bob).exists()


def test_a_management_key_stored_as_an_api_key_stops_being_handed_out(fake, frozen, alice):
    """Saved while OpenRouter could not be asked, a management key is an API key to the
    vault; the first usage fetch learns what it is, and the vault stops offering it."""
    key = stored_key(alice, MANAGEMENT)
    assert resolve_key(owner_id=alice.pk, provider="openrouter") == key

    assert usage_fetch_for_key(api_key_id=key.pk).status == "ok"

    key.refresh_from_db()
    assert key.kind == ApiKey.Kind.ADMIN
    assert resolve_key(owner_id=alice.pk, provider="openrouter") is None
