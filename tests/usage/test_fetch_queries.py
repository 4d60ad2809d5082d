"""What the scheduled fetch costs the database: the 48 h re-read of a window that brings
nothing new writes no bucket and no rollup row and runs a few queries, and one late
bucket writes exactly that bucket and its day of the rollup. Against the fake OpenAI
admin API on 127.0.0.1 through the real SDK."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from keys.models import ApiKey
from tests.fakes.openai_admin import FakeOpenAIAdmin
from tests.keys.factories import ApiKeyFactory
from usage.models import UsageBucket, UsageDaily
from usage.services import pricing
from usage.services.fetching import usage_fetch_for_key
from usage.services.pricing import catalog_prices

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 5, 12, 30, tzinfo=UTC)
MINI = "gpt-4o-mini-2024-07-18"
SECRET = "sk-admin-FakeOrgAdminKey0001000000000000000000000000Zz01"
CONTROL = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK")


@pytest.fixture
def fake(settings):
    server = FakeOpenAIAdmin({SECRET}).start()
    settings.OPENAI_BASE_URL = server.base_url
    yield server
    server.stop()


@pytest.fixture
def fetched(fake, catalog, alice):
    """Alice's admin key fetched once at NOW: usage in six hours over two days, of a
    provider key id none of her stored keys is (so it is known unmatched)."""
    ApiKeyFactory(owner=alice, provider="openai")  # a stored key attribution tries
    key = ApiKeyFactory(owner=alice, secret=SECRET)
    assert key.kind == ApiKey.Kind.ADMIN
    for hours in (2, 3, 5, 26, 28, 30):
        fake.add_usage(NOW - timedelta(hours=hours), model=MINI, input_tokens=100 + hours)
    with time_machine.travel(NOW, tick=False) as traveller:
        assert usage_fetch_for_key(api_key_id=key.pk).buckets == 6
        traveller.shift(timedelta(minutes=15))  # the next scheduled fetch
        yield key


def statements(captured) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if not q["sql"].startswith(CONTROL)]


def writes(sql: list[str], table: str) -> list[str]:
    """The statements writing ``table`` (not those only reading it)."""
    return [
        q
        for q in sql
        if q.startswith((f'INSERT INTO "{table}"', f'UPDATE "{table}"', f'DELETE FROM "{table}"'))
    ]


def test_a_refetch_that_brings_nothing_new_writes_nothing_in_a_few_queries(fetched):
    buckets = list(UsageBucket.objects.order_by("pk").values())
    daily = list(UsageDaily.objects.order_by("pk").values())

    with CaptureQueriesContext(connection) as captured:
        result = usage_fetch_for_key(api_key_id=fetched.pk)

    sql = statements(captured)
    assert result.status == "ok" and result.buckets == 0
    assert writes(sql, "usage_usagebucket") == []
    assert writes(sql, "usage_usagedaily") == []
    assert not [q for q in sql if "models_catalog" in q]  # nothing priced again
    # The key with its fetch state, its links with the candidate keys, the ids known
    # unmatched (the cache: a table without Redis), the owner's lock (PostgreSQL), the
    # stored buckets, and where the fetch stands.
    assert len(sql) <= 6, "\n".join(sql)
    assert list(UsageBucket.objects.order_by("pk").values()) == buckets
    assert list(UsageDaily.objects.order_by("pk").values()) == daily


def test_one_late_bucket_writes_that_bucket_and_its_day_of_the_rollup(fetched, fake):
    late = NOW - timedelta(hours=3)
    fake.add_usage(late, model=MINI, input_tokens=1000)  # reported late, same hour
    other_day = list(UsageDaily.objects.exclude(day=late.date()).values())
    before = dict(UsageBucket.objects.values_list("bucket_start", "updated_at"))

    with CaptureQueriesContext(connection) as captured:
        result = usage_fetch_for_key(api_key_id=fetched.pk)

    sql = statements(captured)
    assert result.status == "ok" and result.buckets == 1
    assert len(writes(sql, "usage_usagebucket")) == 1
    hour_start = late.replace(minute=0)
    after = dict(UsageBucket.objects.values_list("bucket_start", "updated_at"))
    assert [start for start in after if after[start] != before[start]] == [hour_start]
    assert UsageBucket.objects.get(bucket_start=hour_start).input_tokens == 1103
    # The other day's rollup rows are the very same rows; the late day's sum moved on.
    assert list(UsageDaily.objects.exclude(day=late.date()).values()) == other_day
    assert UsageDaily.objects.get(day=late.date()).input_tokens == 102 + 1103 + 105


def test_a_catalog_price_is_read_once_then_remembered(catalog):
    pair = ("openai", MINI)
    first = catalog_prices(pairs={pair})
    assert first[pair] is not None

    with CaptureQueriesContext(connection) as captured:
        assert catalog_prices(pairs={pair}) == first

    assert not [q for q in statements(captured) if "models_catalog" in q]


def test_a_remembered_price_is_kept_in_the_process_until_its_shared_entry_expires(catalog):
    """The assistant prices its model on every /ask, in the web and in the worker: read
    from the shared cache once, then from the process, but never past that entry's end."""
    pair = ("openai", MINI)
    key = pricing._cache_key(pair)
    with time_machine.travel(NOW, tick=False):
        first = catalog_prices(pairs={pair})[pair]
        assert first is not None
        # Another process's entry (another price): this process keeps its own meanwhile.
        other = pricing.Price(Decimal("0.001"), Decimal("0.002"))
        cache.set(key, (other, NOW.timestamp() + 10), 300)
        assert catalog_prices(pairs={pair})[pair] == first

        # Learned from the shared cache, a price ends when that entry says, not later.
        pricing.price_memo_forget()
        assert catalog_prices(pairs={pair})[pair] == other
    newer = pricing.Price(Decimal("0.003"), Decimal("0.004"))
    cache.set(key, (newer, NOW.timestamp() + 400), 300)
    with time_machine.travel(NOW + timedelta(seconds=11), tick=False):
        assert catalog_prices(pairs={pair})[pair] == newer


def test_an_entry_without_its_end_is_read_but_not_kept_in_the_process(catalog):
    """Entries written before prices carried their end (a deploy's old processes)."""
    pair = ("openai", MINI)
    key = pricing._cache_key(pair)
    price = pricing.Price(Decimal("0.001"), Decimal("0.002"))
    cache.set(key, (price,), 300)
    assert catalog_prices(pairs={pair})[pair] == price
    cache.set(key, (None,), 300)
    assert catalog_prices(pairs={pair})[pair] is None


def test_the_process_remembers_a_bounded_number_of_prices(catalog, monkeypatch):
    """Providers name the models in their usage reports: a flood of names cannot grow
    what each process keeps."""
    monkeypatch.setattr(pricing, "MEMO_SIZE", 3)
    catalog_prices(pairs={("openai", f"gpt-made-up-{n}") for n in range(7)})
    assert 0 < len(pricing._memo) <= 3
    assert catalog_prices(pairs={("openai", MINI)})[("openai", MINI)] is not None
    assert len(pricing._memo) <= 3
