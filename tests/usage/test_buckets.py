"""Storing fetched usage: re-reads never double count, late reports update in place, a
provider's cost beats ours, and the daily rollup always equals the buckets it sums."""

import random
from datetime import UTC, timedelta
from math import ceil

import pytest
from django.db import connection
from django.db.models import Sum
from django.db.models.functions import TruncDate
from django.test.utils import CaptureQueriesContext

from tests.accounts.factories import UserFactory
from tests.helpers.races import run_at_once
from tests.keys.factories import ApiKeyFactory, ProjectFactory
from tests.usage.factories import START, bucket_row
from usage.models import UsageBucket, UsageDaily
from usage.records import BucketRow
from usage.services import usage_buckets_upsert
from usage.services.pricing import catalog_prices

FIGURES = ("input_tokens", "output_tokens", "cached_tokens", "requests", "cost_micros")
DAILY = ("owner_id", "day", "source", "provider", "model", "api_key_id", "project_id")
MODELS = ("gpt-4o-mini-2024-07-18", "gpt-4.1-2025-04-14", "o3-2025-04-16")


def hours(first: int, last: int, *, scale: int = 1, **fields) -> list[BucketRow]:
    """What the provider reports for hours [first, last) of the test's three days: a
    row per model and hour, its figures fixed by the hour (so every re-read agrees)."""
    return [
        bucket_row(
            **{
                "model": model,
                "bucket_start": START + timedelta(hours=hour),
                "input_tokens": (100 + hour) * scale,
                "output_tokens": (10 + hour) * scale,
                "cached_tokens": hour * scale,
                "requests": 1 + hour % 5,
                "cost_micros": (1000 + hour * 7) * scale,
                **fields,
            }
        )
        for hour in range(first, last)
        for model in MODELS
    ]


def totals(rows) -> dict[str, int]:
    return {name: sum(getattr(row, name) for row in rows) for name in FIGURES}


def stored_totals(model=UsageBucket, **filters) -> dict[str, int]:
    sums = model.objects.filter(**filters).aggregate(**{name: Sum(name) for name in FIGURES})
    return {name: sums[name] or 0 for name in FIGURES}


def direct_daily() -> dict[tuple, dict[str, int]]:
    """The rollup as a direct aggregation of the buckets would have it."""
    rows = (
        UsageBucket.objects.annotate(day=TruncDate("bucket_start", tzinfo=UTC))
        .values(*DAILY)
        .annotate(**{name: Sum(name) for name in FIGURES})
        .order_by()
    )
    return {
        tuple(row[k] for k in DAILY): {name: row[name] for name in FIGURES}
        for row in rows
        if any(row[name] for name in FIGURES)
    }


def rollup() -> dict[tuple, dict[str, int]]:
    found: dict[tuple, dict[str, int]] = {}
    for row in UsageDaily.objects.values():
        key = tuple(row[k] for k in DAILY)
        sums = found.setdefault(key, dict.fromkeys(FIGURES, 0))
        for name in FIGURES:
            sums[name] += row[name]
    return {key: sums for key, sums in found.items() if any(sums.values())}


def test_fetching_three_overlapping_windows_gives_the_same_totals(alice):
    truth = hours(0, 72)
    for first, last in ((0, 48), (24, 72), (12, 60)):
        usage_buckets_upsert(owner=alice, source="openai_admin", rows=hours(first, last))
    assert UsageBucket.objects.count() == len(truth)
    assert stored_totals() == totals(truth)
    assert stored_totals(UsageDaily) == totals(truth)
    assert rollup() == direct_daily()


def test_fetching_the_same_window_again_changes_nothing(alice):
    rows = hours(0, 24)
    assert usage_buckets_upsert(owner=alice, source="openai_admin", rows=rows) == len(rows)
    before = list(UsageBucket.objects.order_by("id").values("id", *FIGURES))
    usage_buckets_upsert(owner=alice, source="openai_admin", rows=rows)
    assert list(UsageBucket.objects.order_by("id").values("id", *FIGURES)) == before


def test_a_late_report_updates_its_bucket_in_place(alice):
    usage_buckets_upsert(owner=alice, source="openai_admin", rows=hours(0, 48))
    bucket = UsageBucket.objects.get(model=MODELS[0], bucket_start=START + timedelta(hours=47))
    # The provider reports the last hour again, now complete.
    usage_buckets_upsert(owner=alice, source="openai_admin", rows=hours(47, 48, scale=3))
    bucket_after = UsageBucket.objects.get(pk=bucket.pk)
    assert (bucket_after.input_tokens, bucket_after.cost_micros) == (147 * 3, 1329 * 3)
    assert UsageBucket.objects.count() == 48 * len(MODELS)
    expected = totals(hours(0, 47) + hours(47, 48, scale=3))
    assert stored_totals(UsageDaily) == expected
    assert rollup() == direct_daily()


def test_a_provider_cost_is_never_replaced_by_a_computed_one(alice, catalog):
    usage_buckets_upsert(owner=alice, source="openai_admin", rows=[bucket_row(cost_micros=5000)])
    # A later read without costs: tokens move on, the provider's cost stays.
    usage_buckets_upsert(
        owner=alice,
        source="openai_admin",
        rows=[bucket_row(cost_micros=None, input_tokens=2000, output_tokens=900)],
    )
    bucket = UsageBucket.objects.get()
    assert (bucket.input_tokens, bucket.output_tokens) == (2000, 900)
    assert (bucket.cost_micros, bucket.cost_source) == (5000, "provider")
    assert UsageDaily.objects.get().cost_micros == 5000


def test_a_provider_cost_replaces_a_computed_one(alice, catalog):
    usage_buckets_upsert(owner=alice, source="openai_admin", rows=[bucket_row(cost_micros=None)])
    bucket = UsageBucket.objects.get()
    # 800 uncached + 200 cached input and 500 output tokens at gpt-4o-mini's prices.
    assert (bucket.cost_micros, bucket.cost_source) == (120 + 15 + 300, "computed")
    usage_buckets_upsert(owner=alice, source="openai_admin", rows=[bucket_row(cost_micros=470)])
    bucket.refresh_from_db()
    assert (bucket.cost_micros, bucket.cost_source) == (470, "provider")
    assert UsageDaily.objects.get().cost_micros == 470


def test_a_computed_cost_follows_new_tokens(alice, catalog):
    usage_buckets_upsert(owner=alice, source="openai_admin", rows=[bucket_row(cost_micros=None)])
    usage_buckets_upsert(
        owner=alice,
        source="openai_admin",
        rows=[bucket_row(cost_micros=None, input_tokens=2000, cached_tokens=0)],
    )
    assert UsageBucket.objects.get().cost_micros == 300 + 300


def test_a_model_the_catalog_does_not_know_costs_nothing_and_is_logged(alice, catalog, caplog):
    usage_buckets_upsert(
        owner=alice, source="openai_admin", rows=[bucket_row(model="ft:custom", cost_micros=None)]
    )
    bucket = UsageBucket.objects.get()
    assert (bucket.cost_micros, bucket.cost_source) == (0, "computed")
    assert "No catalog price for openai model 'ft:custom'" in caplog.text


def test_rows_of_one_bucket_in_one_call_add_up(alice, catalog):
    # OpenAI splits a bucket into batch and non-batch lines when asked to.
    rows = [bucket_row(), bucket_row(input_tokens=10, cached_tokens=0, cost_micros=None)]
    assert usage_buckets_upsert(owner=alice, source="openai_admin", rows=rows) == 1
    bucket = UsageBucket.objects.get()
    assert (bucket.input_tokens, bucket.requests) == (1010, 8)
    # 10 input and 500 output tokens priced from the catalog, added to the reported 2500.
    assert (bucket.cost_micros, bucket.cost_source) == (2500 + 2 + 300, "computed")


def test_usage_is_attributed_only_to_the_owners_own_keys(alice, bob):
    project = ProjectFactory(owner=alice)
    alices_key = ApiKeyFactory(owner=alice, project=project)
    bobs_key = ApiKeyFactory(owner=bob)
    usage_buckets_upsert(
        owner=alice,
        source="openai_admin",
        rows=[
            bucket_row(external_key_id="key_a", api_key_id=alices_key.pk),
            bucket_row(external_key_id="key_b", api_key_id=bobs_key.pk),
        ],
    )
    attributed = dict(UsageBucket.objects.values_list("external_key_id", "api_key_id"))
    assert attributed == {"key_a": alices_key.pk, "key_b": None}
    assert UsageBucket.objects.get(external_key_id="key_a").project_id == project.pk
    assert not UsageBucket.objects.filter(owner=bob).exists()


def test_a_key_stored_later_takes_over_its_usage(alice):
    usage_buckets_upsert(owner=alice, source="openai_admin", rows=hours(0, 2))
    key = ApiKeyFactory(owner=alice, project=ProjectFactory(owner=alice))
    usage_buckets_upsert(owner=alice, source="openai_admin", rows=hours(0, 2, api_key_id=key.pk))
    assert set(UsageBucket.objects.values_list("api_key_id", flat=True)) == {key.pk}
    assert set(UsageDaily.objects.values_list("api_key_id", flat=True)) == {key.pk}
    assert rollup() == direct_daily()


def test_usage_outlives_a_deleted_key(alice):
    key = ApiKeyFactory(owner=alice)
    usage_buckets_upsert(owner=alice, source="openai_admin", rows=hours(0, 2, api_key_id=key.pk))
    key.delete()
    assert stored_totals(UsageDaily) == totals(hours(0, 2))
    assert set(UsageBucket.objects.values_list("api_key_id", flat=True)) == {None}


def test_the_rollup_equals_the_buckets_after_random_upserts(alice, bob, catalog):
    chance = random.Random(10)
    keys = [None, ApiKeyFactory(owner=alice).pk, ApiKeyFactory(owner=alice).pk]
    for _ in range(25):
        owner = chance.choice([alice, alice, bob])
        first = chance.randrange(0, 90)
        rows = [
            bucket_row(
                model=chance.choice([*MODELS, "claude-sonnet-4-5"]),
                provider=chance.choice(["openai", "anthropic"]),
                external_key_id=f"key_{chance.randrange(3)}",
                api_key_id=chance.choice(keys) if owner == alice else None,
                bucket_start=START + timedelta(hours=chance.randrange(first, first + 30)),
                granularity="hour",
                input_tokens=(tokens := chance.randrange(0, 10_000)),
                cached_tokens=chance.randrange(0, tokens + 1),
                output_tokens=chance.randrange(0, 5_000),
                requests=chance.randrange(0, 40),
                cost_micros=chance.choice([None, chance.randrange(0, 90_000)]),
            )
            for _ in range(chance.randrange(1, 40))
        ]
        source = chance.choice(["openai_admin", "anthropic_admin"])
        usage_buckets_upsert(owner=owner, source=source, rows=rows)
    assert rollup() == direct_daily()
    assert stored_totals(UsageDaily) == stored_totals()


def test_a_thousand_rows_are_stored_in_a_handful_of_queries(alice, catalog):
    # Other figures than ``many``'s first hours: a row the same as stored is not written.
    few = hours(0, 3, cost_micros=None, scale=2)
    many = hours(0, 334, cost_micros=None)  # 1,002 rows over 14 days
    catalog_prices(pairs={("openai", model) for model in MODELS})  # remembered, as in a worker
    with CaptureQueriesContext(connection) as captured_few:
        usage_buckets_upsert(owner=alice, source="openai_admin", rows=few)
    with CaptureQueriesContext(connection) as captured_many:
        usage_buckets_upsert(owner=alice, source="openai_admin", rows=many)

    def split(captured):
        sql = [query["sql"] for query in captured.captured_queries]
        inserts = [q for q in sql if q.startswith('INSERT INTO "usage_usagebucket"')]
        return len(inserts), len(sql) - len(inserts)

    # Only the bulk INSERT grows, by the rows the database takes per statement (500,
    # or 58 of these on SQLite, which allows 999 parameters).
    fields = [f for f in UsageBucket._meta.concrete_fields if not f.primary_key]
    per_insert = min(500, connection.ops.bulk_batch_size(fields, many))
    assert split(captured_many) == (ceil(len(many) / per_insert), split(captured_few)[1])
    assert split(captured_few)[1] <= 8
    assert UsageBucket.objects.count() == len(many)


def test_metered_usage_is_not_an_upsert_source(alice):
    with pytest.raises(ValueError, match="not a fetched usage source"):
        usage_buckets_upsert(owner=alice, source="kay_metered", rows=[bucket_row()])


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"bucket_start": START.replace(tzinfo=None)}, "timezone-aware"),
        ({"bucket_start": START + timedelta(minutes=30)}, "does not start a hour"),
        ({"granularity": "day", "bucket_start": START + timedelta(hours=1)}, "does not start"),
        ({"granularity": "week"}, "granularity"),
        ({"input_tokens": -1}, "negative"),
        ({"cost_micros": -5}, "negative"),
        ({"cached_tokens": 2000}, "cannot exceed"),
        ({"model": "m" * 201}, "longer than 200"),
        ({"provider": ""}, "provider is required"),
    ],
)
def test_a_malformed_row_is_refused_before_anything_is_stored(fields, problem):
    with pytest.raises(ValueError, match=problem):
        bucket_row(**fields)


def test_a_day_bucket_in_another_timezone_is_stored_at_utc_midnight(alice):
    from zoneinfo import ZoneInfo

    paris = START.astimezone(ZoneInfo("Europe/Paris"))  # 01:00 in Paris
    usage_buckets_upsert(
        owner=alice, source="openrouter", rows=[bucket_row(granularity="day", bucket_start=paris)]
    )
    assert UsageBucket.objects.get().bucket_start == START
    assert UsageDaily.objects.get().day == START.date()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_fetches_of_several_keys_at_once_keep_the_rollup_whole():
    # Five admin keys of one owner fetched by five workers: their buckets differ (their
    # own key ids) but they sum into the same rollup rows.
    owner = UserFactory()
    writers = 5

    def fetch(n: int) -> None:
        for first in (0, 12, 6):
            rows = hours(first, first + 30, external_key_id=f"key_{n}")
            usage_buckets_upsert(owner=owner, source="openai_admin", rows=rows)

    run_at_once(fetch, writers)
    assert stored_totals(UsageDaily) == {
        name: value * writers for name, value in totals(hours(0, 42)).items()
    }
    assert rollup() == direct_daily()
