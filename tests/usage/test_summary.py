"""What the Usage page and API read: totals, the previous period, a series by time and
model, breakdowns by model, provider, key and project — the owner's only, in a constant
number of queries."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.errors import ApplicationError
from tests.keys.factories import ApiKeyFactory, ProjectFactory
from tests.usage.factories import START, bucket_row, two_keys_usage
from usage.selectors import Figures, usage_summary
from usage.services import usage_buckets_upsert, usage_record_llm_call

DAY = START.date()  # 2026-03-02


def summary(owner, *, start=DAY, end=DAY, granularity="day", **filters):
    return usage_summary(owner=owner, start=start, end=end, granularity=granularity, **filters)


def store(owner, *rows, source="openai_admin"):
    usage_buckets_upsert(owner=owner, source=source, rows=list(rows))


@pytest.fixture
def alices_usage(alice):
    """Two keys in two projects, two models, two days, and a row no key is known for."""
    keys = two_keys_usage(alice)
    store(alice, bucket_row(external_key_id="k_unknown", cost_micros=250_000))
    return keys


def test_totals_and_the_previous_period(alice, alices_usage):
    result = summary(alice)
    assert result.totals == Figures(
        cost_micros=4_750_000,
        input_tokens=3050,
        output_tokens=1505,
        cached_tokens=600,
        requests=13,
    )
    assert result.totals.tokens == 3050 + 1505
    assert result.previous == Figures(2_000_000, 1000, 500, 200, 4)


def test_breakdowns_by_model_provider_key_and_project_largest_cost_first(alice, alices_usage):
    web, batch = alices_usage["web"], alices_usage["batch"]
    result = summary(alice)
    assert [(m.model, m.figures.cost_micros) for m in result.by_model] == [
        ("gpt-4o-mini-2024-07-18", 3_750_000),
        ("gpt-4.1", 1_000_000),
    ]
    assert [(p.provider, p.figures.requests) for p in result.by_provider] == [("openai", 13)]
    assert [(k.key_id, k.name, k.masked_key, k.figures.cost_micros) for k in result.by_key] == [
        (web.pk, "web", web.masked_key, 4_000_000),
        (batch.pk, "batch", batch.masked_key, 500_000),
        (None, "", "", 250_000),
    ]
    assert [(p.project_id, p.name, p.figures.cost_micros) for p in result.by_project] == [
        (web.project_id, "Web", 4_000_000),
        (batch.project_id, "Batch", 500_000),
        (None, "", 250_000),
    ]


def test_the_series_has_a_point_per_time_bucket_and_model(alice, alices_usage):
    daily = summary(alice, start=DAY - timedelta(days=1))
    assert [(p.start, p.model, p.figures.cost_micros) for p in daily.series] == [
        (START - timedelta(days=1), "gpt-4o-mini-2024-07-18", 2_000_000),
        (START, "gpt-4.1", 1_000_000),
        (START, "gpt-4o-mini-2024-07-18", 3_750_000),
    ]
    hourly = summary(alice, granularity="hour")
    assert [(p.start, p.model, p.figures.requests) for p in hourly.series] == [
        (START, "gpt-4o-mini-2024-07-18", 12),
        (START + timedelta(hours=5), "gpt-4.1", 1),
    ]


def test_hourly_and_daily_summaries_of_a_period_agree(alice, alices_usage, catalog):
    usage_record_llm_call(
        owner=alice,
        call_id="late-call",
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=10,
        output_tokens=10,
        at=START + timedelta(hours=23, minutes=59),
    )
    start = DAY - timedelta(days=1)
    daily, hourly = summary(alice, start=start), summary(alice, start=start, granularity="hour")
    assert daily.totals == hourly.totals
    assert daily.previous == hourly.previous
    assert daily.by_key == hourly.by_key and daily.by_project == hourly.by_project
    assert daily.by_model == hourly.by_model


@pytest.mark.parametrize("granularity", ["day", "hour"])
def test_filters_narrow_every_figure(alice, alices_usage, granularity):
    web = alices_usage["web"]
    by_key = summary(alice, granularity=granularity, key_id=web.pk)
    assert by_key.totals.cost_micros == 4_000_000
    assert by_key.previous.cost_micros == 2_000_000
    assert [k.key_id for k in by_key.by_key] == [web.pk]
    batch_project = alices_usage["batch"].project_id
    by_project = summary(alice, granularity=granularity, project_id=batch_project)
    assert by_project.totals.cost_micros == 500_000
    by_model = summary(alice, granularity=granularity, model="gpt-4.1", provider="openai")
    assert [p.model for p in by_model.series] == ["gpt-4.1"]
    assert summary(alice, granularity=granularity, provider="anthropic").totals == Figures()


@pytest.mark.parametrize("granularity", ["day", "hour"])
def test_bob_sees_nothing_of_alices_usage(alice, bob, alices_usage, granularity):
    bobs_key = ApiKeyFactory(owner=bob, project=ProjectFactory(owner=bob))
    store(bob, bucket_row(api_key_id=bobs_key.pk, cost_micros=7))
    web = alices_usage["web"]
    mine = summary(bob, granularity=granularity)
    assert mine.totals.cost_micros == 7 and mine.previous == Figures()
    assert [k.key_id for k in mine.by_key] == [bobs_key.pk]
    # alice's ids as filters: nothing, not alice's figures.
    for filters in ({"key_id": web.pk}, {"project_id": web.project_id}):
        stolen = summary(bob, granularity=granularity, **filters)
        assert (stolen.totals, stolen.previous, stolen.series) == (Figures(), Figures(), [])
        assert stolen.by_key == stolen.by_project == stolen.by_model == []
    # ...and the other way round.
    assert summary(alice, granularity=granularity, key_id=bobs_key.pk).totals == Figures()


def test_an_owner_without_usage_gets_an_empty_summary(charlie):
    result = summary(charlie)
    assert result.totals == result.previous == Figures()
    assert result.series == result.by_model == result.by_key == result.by_project == []


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"end": DAY - timedelta(days=1)}, "ends before it starts"),
        ({"granularity": "week"}, "day or hour"),
        ({"end": DAY + timedelta(days=31), "granularity": "hour"}, "at most 31 days"),
        ({"end": DAY + timedelta(days=366)}, "at most 366 days"),
    ],
)
def test_a_period_it_cannot_summarise_is_refused(alice, fields, problem):
    with pytest.raises(ApplicationError, match=problem):
        summary(alice, **fields)


def _usage_of_keys(owner, count: int) -> None:
    """``count`` keys, each with two models over a week of hours and a project."""
    project = ProjectFactory(owner=owner)
    for _ in range(count):
        key = ApiKeyFactory(owner=owner, project=project)
        store(
            owner,
            *(
                bucket_row(
                    api_key_id=key.pk,
                    external_key_id=f"k_{key.pk}",
                    model=model,
                    bucket_start=START + timedelta(hours=hour),
                )
                for hour in range(0, 24 * 7, 5)
                for model in ("gpt-4o-mini", "gpt-4.1")
            ),
        )


def _queries(owner, granularity: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        result = summary(owner, start=DAY, end=DAY + timedelta(days=6), granularity=granularity)
    assert result.totals.requests > 0
    return [query["sql"] for query in captured.captured_queries]


@pytest.mark.parametrize("granularity", ["day", "hour"])
def test_a_summary_is_three_queries_with_one_key_or_fifty(alice, bob, granularity):
    _usage_of_keys(alice, 1)
    _usage_of_keys(bob, 50)
    one, fifty = _queries(alice, granularity), _queries(bob, granularity)
    assert len(one) == len(fifty) == 3, "\n".join(fifty)
    assert len(summary(bob, start=DAY, end=DAY + timedelta(days=6)).by_key) == 50


def test_summary_days_are_utc_days(alice, catalog):
    late = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)
    call = {"provider": "openai", "model": "gpt-4o-mini", "input_tokens": 1, "output_tokens": 1}
    usage_record_llm_call(owner=alice, call_id="late-call", at=late, **call)
    assert summary(alice, start=date(2026, 3, 2)).totals.requests == 1
    assert summary(alice, start=date(2026, 3, 3), end=date(2026, 3, 3)).totals.requests == 0
