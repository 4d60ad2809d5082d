"""The usage CSV: the figures the page shows, one row per time bucket and model, safe to
open in a spreadsheet."""

import csv
import io
from datetime import timedelta

from tests.keys.factories import ApiKeyFactory
from tests.usage.factories import START, bucket_row
from usage.exports import cost_usd, usage_csv
from usage.selectors import usage_summary
from usage.services import usage_buckets_upsert

DAY = START.date()


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_cost_is_an_exact_decimal_string_of_dollars():
    assert cost_usd(12_345_678) == "12.345678"
    assert cost_usd(5) == "0.000005"
    assert cost_usd(0) == "0.000000"


def test_one_row_per_day_and_model_adding_up_to_the_totals(alice):
    key = ApiKeyFactory(owner=alice)
    usage_buckets_upsert(
        owner=alice,
        source="openai_admin",
        rows=[
            bucket_row(api_key_id=key.pk, cost_micros=1_500_000),
            bucket_row(api_key_id=key.pk, model="gpt-4.1", cost_micros=250),
            bucket_row(bucket_start=START + timedelta(days=1), cost_micros=3),
        ],
    )
    summary = usage_summary(owner=alice, start=DAY, end=DAY + timedelta(days=1), granularity="day")
    rows = rows_of(usage_csv(summary))
    assert rows == [
        {
            "start": "2026-03-02",
            "provider": "openai",
            "model": "gpt-4.1",
            "requests": "4",
            "input_tokens": "1000",
            "output_tokens": "500",
            "cached_tokens": "200",
            "cost_usd": "0.000250",
        },
        {
            "start": "2026-03-02",
            "provider": "openai",
            "model": "gpt-4o-mini-2024-07-18",
            "requests": "4",
            "input_tokens": "1000",
            "output_tokens": "500",
            "cached_tokens": "200",
            "cost_usd": "1.500000",
        },
        {
            "start": "2026-03-03",
            "provider": "openai",
            "model": "gpt-4o-mini-2024-07-18",
            "requests": "4",
            "input_tokens": "1000",
            "output_tokens": "500",
            "cached_tokens": "200",
            "cost_usd": "0.000003",
        },
    ]
    assert sum(int(r["requests"]) for r in rows) == summary.totals.requests


def test_hourly_rows_start_at_the_hour_in_utc(alice):
    hour = bucket_row(bucket_start=START + timedelta(hours=7))
    usage_buckets_upsert(owner=alice, source="openai_admin", rows=[hour])
    summary = usage_summary(owner=alice, start=DAY, end=DAY, granularity="hour")
    assert [r["start"] for r in rows_of(usage_csv(summary))] == ["2026-03-02T07:00:00Z"]


def test_a_model_name_that_would_be_a_spreadsheet_formula_is_defused(alice):
    usage_buckets_upsert(
        owner=alice,
        source="openai_admin",
        rows=[
            bucket_row(model=name, external_key_id=name)
            for name in ("=HYPERLINK(1)", "+1", "-2", "@SUM(A1)", "plain")
        ],
    )
    summary = usage_summary(owner=alice, start=DAY, end=DAY, granularity="day")
    models = sorted(r["model"] for r in rows_of(usage_csv(summary)))
    assert models == ["'+1", "'-2", "'=HYPERLINK(1)", "'@SUM(A1)", "plain"]


def test_an_empty_summary_is_just_the_header(charlie):
    summary = usage_summary(owner=charlie, start=DAY, end=DAY, granularity="day")
    assert usage_csv(summary) == (
        "start,provider,model,requests,input_tokens,output_tokens,cached_tokens,cost_usd\r\n"
    )
