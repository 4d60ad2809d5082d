"""Anthropic organisation usage and costs, per admin key, against the fake Admin API on
127.0.0.1: tokens per model, API key and workspace; costs in cents turned exactly into
micro-dollars and shared between keys; re-reading without double counting; faults."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from core.errors import ProviderError, ProviderUnavailable
from keys.models import ApiKey
from tests.fakes.anthropic_admin import COST_PATH, KEYS_PATH, USAGE_PATH, FakeAnthropicAdmin
from tests.keys.factories import ApiKeyFactory
from tests.usage.test_fetching import totals
from usage import tasks
from usage.models import CostSource, Source, UsageBucket, UsageFetchState
from usage.providers import anthropic
from usage.providers.anthropic import AnthropicKey, anthropic_api_keys, fetch_anthropic_usage
from usage.services.fetching import usage_fetch_for_key

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 5, 12, 30, tzinfo=UTC)
TODAY = datetime(2026, 3, 5, tzinfo=UTC)
YESTERDAY = TODAY - timedelta(days=1)
SONNET = "claude-sonnet-4-5-20250929"
HAIKU = "claude-haiku-4-5-20251001"


def admin_secret(n: int) -> str:
    return f"sk-ant-admin01-FakeAnthropicAdminKey{n:04d}000000000000000000AA"


GOOD = [admin_secret(n) for n in range(1, 6)]
BAD = admin_secret(99)


@pytest.fixture
def fake(settings):
    server = FakeAnthropicAdmin(set(GOOD)).start()
    settings.ANTHROPIC_BASE_URL = server.base_url
    settings.KEYS_VALIDATION_TIMEOUT = 2.0
    yield server
    server.stop()


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def admin_key(owner, secret=GOOD[0]):
    key = ApiKeyFactory(owner=owner, provider="anthropic", secret=secret)
    assert key.kind == ApiKey.Kind.ADMIN
    return key


def bucket(owner, **identity):
    return UsageBucket.objects.get(owner=owner, **identity)


def test_usage_is_stored_per_day_model_key_and_workspace_with_cache_tokens_in_input(
    fake, frozen, alice
):
    key = admin_key(alice)
    fake.add_usage(
        YESTERDAY + timedelta(hours=9),
        model=SONNET,
        uncached=1000,
        cache_read=400,
        cache_5m=50,
        cache_1h=25,
        output=300,
    )
    fake.add_usage(YESTERDAY + timedelta(hours=20), model=SONNET, uncached=10, output=5)
    fake.add_usage(TODAY + timedelta(hours=1), model=HAIKU, api_key_id=None, workspace_id=None)

    result = usage_fetch_for_key(api_key_id=key.pk)

    assert result.status == "ok" and result.buckets == 2
    row = bucket(alice, model=SONNET)
    assert (row.source, row.provider, row.granularity) == (
        Source.ANTHROPIC_ADMIN,
        "anthropic",
        "day",
    )
    assert row.bucket_start == YESTERDAY
    assert (row.external_key_id, row.external_project_id) == ("apikey_a", "wrkspc_a")
    # input = uncached + cache reads + both cache writes; cached = cache reads.
    assert (row.input_tokens, row.cached_tokens, row.output_tokens) == (1485, 400, 305)
    assert row.requests == 0  # the usage report counts no requests
    # Console usage (no key) in the default workspace (no id) is stored too.
    console = bucket(alice, model=HAIKU)
    assert (console.external_key_id, console.external_project_id) == ("", "")
    # Each report was asked for whole days, grouped as needed, 31 buckets a page.
    usage_params = fake.requests_to(USAGE_PATH)[0]
    assert usage_params["starting_at"] == ["2026-03-03T00:00:00Z"]
    assert usage_params["ending_at"] == ["2026-03-06T00:00:00Z"]
    assert sorted(usage_params["group_by[]"]) == ["api_key_id", "model", "workspace_id"]
    assert sorted(fake.requests_to(COST_PATH)[0]["group_by[]"]) == ["description", "workspace_id"]


def test_costs_in_cents_become_exact_micro_dollars_and_win_over_catalog_prices(
    fake, frozen, alice, catalog
):
    key = admin_key(alice)
    fake.add_usage(YESTERDAY, model=SONNET, uncached=1000, output=100)
    fake.add_cost(YESTERDAY, "123.45", model=SONNET, token_type="uncached_input_tokens")
    fake.add_cost(YESTERDAY, "0.005", model=SONNET, token_type="output_tokens")

    usage_fetch_for_key(api_key_id=key.pk)

    row = bucket(alice, model=SONNET)
    # 123.45 + 0.005 cents = $1.23455 = 1,234,550 micro-dollars, not a catalog estimate.
    assert (row.cost_micros, row.cost_source) == (1_234_550, CostSource.PROVIDER)


def test_a_token_cost_is_shared_between_keys_by_their_tokens_of_that_type(fake, frozen, alice):
    key = admin_key(alice)
    fake.add_usage(YESTERDAY, model=SONNET, api_key_id="apikey_a", uncached=1, output=100)
    fake.add_usage(YESTERDAY, model=SONNET, api_key_id="apikey_b", uncached=2, output=200)
    fake.add_usage(YESTERDAY, model=SONNET, api_key_id="apikey_c", uncached=3)  # no output
    fake.add_cost(YESTERDAY, "1", model=SONNET, token_type="output_tokens")  # 10,000 µ$
    fake.add_cost(YESTERDAY, "0.0001", model=SONNET, token_type="uncached_input_tokens")  # 1 µ$

    usage_fetch_for_key(api_key_id=key.pk)

    costs = dict(
        UsageBucket.objects.filter(owner=alice).values_list("external_key_id", "cost_micros")
    )
    # Output: 1/3 and 2/3 of 10,000; the one micro-dollar of input goes to one key only,
    # so the shares add up to exactly what Anthropic reported.
    assert sum(costs.values()) == 10_001
    assert costs["apikey_a"] in (3333, 3334) and costs["apikey_b"] in (6666, 6667, 6668)
    assert costs["apikey_c"] in (0, 1)


def test_a_cost_no_usage_can_take_is_a_row_of_its_own(fake, frozen, alice, catalog):
    key = admin_key(alice)
    fake.add_usage(YESTERDAY, model=SONNET, uncached=10)
    fake.add_cost(YESTERDAY, "250", cost_type="web_search")  # $2.50 of web searches
    fake.add_cost(YESTERDAY, "0.3", model=SONNET, token_type="uncached_input_tokens")

    usage_fetch_for_key(api_key_id=key.pk)

    search = bucket(alice, model="")
    assert (search.cost_micros, search.input_tokens, search.external_key_id) == (2_500_000, 0, "")
    assert bucket(alice, model=SONNET).cost_micros == 3000
    assert totals(alice)["cost_micros__sum"] == 2_503_000


def test_usage_without_a_reported_cost_is_priced_until_anthropic_reports_it(
    fake, frozen, alice, catalog
):
    key = admin_key(alice)
    fake.add_usage(TODAY, model="claude-sonnet-4.5", uncached=1_000_000)

    usage_fetch_for_key(api_key_id=key.pk)
    row = bucket(alice, model="claude-sonnet-4.5")
    assert (row.cost_micros, row.cost_source) == (3_000_000, CostSource.COMPUTED)  # $3 / M

    # The cost report catches up later: the same bucket takes the provider's figure.
    fake.add_cost(TODAY, "280", model="claude-sonnet-4.5", token_type="uncached_input_tokens")
    frozen.shift(timedelta(minutes=15))
    usage_fetch_for_key(api_key_id=key.pk)
    row.refresh_from_db()
    assert (row.cost_micros, row.cost_source) == (2_800_000, CostSource.PROVIDER)
    assert UsageBucket.objects.filter(owner=alice).count() == 1


def test_three_overlapping_fetches_give_the_same_totals_and_a_late_report_updates_in_place(
    fake, frozen, alice
):
    key = admin_key(alice)
    fake.add_usage(YESTERDAY + timedelta(hours=3), model=SONNET, uncached=100, output=10)
    fake.add_usage(TODAY, model=HAIKU, uncached=50, output=5)
    fake.add_cost(YESTERDAY, "10", model=SONNET, token_type="uncached_input_tokens")

    usage_fetch_for_key(api_key_id=key.pk)
    first = totals(alice)
    for _ in range(2):
        frozen.shift(timedelta(hours=3))
        usage_fetch_for_key(api_key_id=key.pk)
    assert totals(alice) == first
    assert UsageBucket.objects.filter(owner=alice).count() == 2

    fake.add_usage(YESTERDAY + timedelta(hours=23), model=SONNET, uncached=1)  # reported late
    usage_fetch_for_key(api_key_id=key.pk)
    assert totals(alice)["input_tokens__sum"] == first["input_tokens__sum"] + 1
    assert UsageBucket.objects.filter(owner=alice).count() == 2


def test_a_backfill_reads_every_page(fake, frozen, alice):
    key = admin_key(alice)
    for days in range(0, 45, 11):
        fake.add_usage(TODAY - timedelta(days=days), model=SONNET, uncached=days + 1)

    usage_fetch_for_key(api_key_id=key.pk, since=NOW - timedelta(days=44))

    assert len(fake.requests_to(USAGE_PATH)) == 2  # 45 days: 31 + 14 buckets
    assert totals(alice)["input_tokens__sum"] == sum(d + 1 for d in range(0, 45, 11))
    assert UsageFetchState.objects.get(api_key=key).cursor == NOW


def test_a_429_is_retried_after_the_providers_retry_after(fake, frozen, alice, retry_delays):
    key = admin_key(alice)
    fake.add_usage(TODAY, model=SONNET, uncached=10)
    fake.retry_after = "41"
    fake.fail(COST_PATH, 429)

    assert tasks.fetch_usage_for_key.apply(args=[key.pk]).get() == "ok"

    assert retry_delays == [41]
    assert totals(alice)["input_tokens__sum"] == 10


def test_a_500_then_success_is_retried_with_backoff(fake, frozen, alice, retry_delays):
    key = admin_key(alice)
    fake.add_usage(TODAY, model=SONNET, uncached=10)
    fake.fail(USAGE_PATH, 500)

    assert tasks.fetch_usage_for_key.apply(args=[key.pk]).get() == "ok"

    assert len(retry_delays) == 1 and 10 <= retry_delays[0] <= 20
    assert UsageFetchState.objects.get(api_key=key).last_status == "ok"


def test_a_timeout_is_a_provider_unavailable_in_kays_words(fake, frozen, alice, monkeypatch):
    key = admin_key(alice)
    monkeypatch.setattr(anthropic, "TIMEOUT", 0.2)
    fake.delay = 0.5

    with pytest.raises(ProviderUnavailable):
        usage_fetch_for_key(api_key_id=key.pk)

    state = UsageFetchState.objects.get(api_key=key)
    assert state.last_status == "error" and state.cursor is None
    assert state.last_error == "Anthropic did not send the usage in time."


def test_a_refused_key_is_marked_invalid_and_the_owner_told_in_kays_words(fake, frozen, alice):
    key = admin_key(alice, BAD)

    result = usage_fetch_for_key(api_key_id=key.pk)

    assert result.status == "invalid_key"
    key.refresh_from_db()
    assert key.status == ApiKey.Status.INVALID
    state = UsageFetchState.objects.get(api_key=key)
    assert state.last_status == "invalid_key"
    assert "Anthropic rejected this key (HTTP 401)" in state.last_error
    assert "invalid x-api-key" not in state.last_error and BAD[-6:] not in state.last_error
    assert not UsageBucket.objects.exists()


def test_an_anthropic_api_key_has_no_usage_to_fetch(fake, alice):
    key = ApiKeyFactory(owner=alice, provider="anthropic", secret="sk-ant-api03-" + "k" * 40)
    assert usage_fetch_for_key(api_key_id=key.pk).status == "skipped"
    assert fake.requests == []


def test_each_owner_stores_only_their_own_organisations_usage(fake, frozen, alice, bob):
    alice_key, bob_key = admin_key(alice), admin_key(bob, GOOD[1])
    fake.add_usage(TODAY, model=SONNET, uncached=10)
    usage_fetch_for_key(api_key_id=alice_key.pk)
    assert UsageBucket.objects.filter(owner=alice).count() == 1
    assert not UsageBucket.objects.filter(owner=bob).exists()
    usage_fetch_for_key(api_key_id=bob_key.pk)
    assert UsageBucket.objects.filter(owner=bob).count() == 1


def test_the_api_key_listing_follows_every_page(fake):
    for n in range(105):
        fake.add_api_key(
            f"apikey_{n:03d}",
            name=f"key {n}",
            hint=f"sk-ant-api03-A{n:02d}...xyAA",
            workspace_id=None,
        )
    keys = anthropic_api_keys(admin_key=GOOD[0])
    assert len(keys) == 105 and len(fake.requests_to(KEYS_PATH)) == 2
    assert keys[0] == AnthropicKey("apikey_000", "key 0", "sk-ant-api03-A00...xyAA", "")
    assert fake.requests_to(KEYS_PATH)[1]["after_id"] == ["apikey_099"]


def test_a_cost_amount_that_is_not_a_number_is_refused_in_kays_words(fake, frozen):
    fake.add_cost(YESTERDAY, "not a number", model=SONNET, token_type="output_tokens")
    with pytest.raises(ProviderError, match="^Anthropic sent costs we could not read.$"):
        fetch_anthropic_usage(admin_key=GOOD[0], start=YESTERDAY, end=NOW)
