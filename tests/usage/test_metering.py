"""Kay's own LLM calls: each recorded once, in the hour bucket of the key that paid, at the
catalog's price; calls recorded at the same moment all count."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.accounts.factories import UserFactory
from tests.helpers.races import run_at_once
from tests.keys.factories import ApiKeyFactory, ProjectFactory
from tests.usage.conftest import CLAUDE_SONNET, GPT_4O_MINI, catalog_model
from usage.models import MeteredLlmCall, UsageBucket, UsageDaily
from usage.selectors import usage_summary
from usage.services import LlmCall, usage_record_llm_call, usage_record_llm_calls
from usage.services.pricing import candidates

AT = datetime(2026, 3, 2, 14, 25, 7, tzinfo=UTC)


# One gpt-4o-mini call: 800 uncached and 200 cached input tokens, 500 output tokens.
CALL = {
    "provider": "openai",
    "model": "gpt-4o-mini",
    "input_tokens": 1000,
    "output_tokens": 500,
    "cached_tokens": 200,
    "at": AT,
}


def record(owner, **fields):
    values = {**CALL, "call_id": str(uuid.uuid4())}
    values.update(fields)
    return usage_record_llm_call(owner=owner, **values)


def test_a_call_is_recorded_once_in_its_hour_at_the_catalog_price(alice, catalog):
    key = ApiKeyFactory(owner=alice, project=ProjectFactory(owner=alice))
    call = record(alice, api_key=key)
    bucket = UsageBucket.objects.get()
    assert call.bucket_id == bucket.pk
    # 800 uncached + 200 cached input tokens and 500 output tokens of gpt-4o-mini.
    assert call.cost_micros == 120 + 15 + 300 and call.priced
    assert (bucket.source, bucket.granularity, bucket.bucket_start) == (
        "kay_metered",
        "hour",
        datetime(2026, 3, 2, 14, tzinfo=UTC),
    )
    assert (bucket.api_key_id, bucket.project_id) == (key.pk, key.project_id)
    assert (bucket.input_tokens, bucket.output_tokens, bucket.cached_tokens) == (1000, 500, 200)
    assert (bucket.requests, bucket.cost_micros, bucket.cost_source) == (1, 435, "computed")
    daily = UsageDaily.objects.get()
    assert (daily.day, daily.requests, daily.cost_micros) == (AT.date(), 1, 435)


def test_each_call_is_one_record_billing_can_refer_to(alice, catalog):
    key = ApiKeyFactory(owner=alice)
    call = record(alice, api_key=key, call_id="run-7-1")
    stored = MeteredLlmCall.objects.get(pk=call.record_id)
    assert (stored.owner, stored.api_key, stored.call_id, stored.bucket_id) == (
        alice,
        key,
        "run-7-1",
        call.bucket_id,
    )
    assert (stored.provider, stored.model, stored.cost_micros, stored.priced) == (
        "openai",
        "gpt-4o-mini",
        435,
        True,
    )
    assert (stored.input_tokens, stored.output_tokens, stored.cached_tokens) == (1000, 500, 200)


def test_the_same_call_id_twice_is_recorded_once(alice, catalog):
    first = record(alice, call_id="run-7-1")
    again = record(alice, call_id="run-7-1", input_tokens=9000, cached_tokens=0)
    assert again == first
    assert MeteredLlmCall.objects.count() == 1
    bucket = UsageBucket.objects.get()
    assert (bucket.requests, bucket.input_tokens, bucket.cost_micros) == (1, 1000, 435)
    assert UsageDaily.objects.get().requests == 1


def test_two_owners_may_use_the_same_call_id(alice, bob, catalog):
    record(alice, call_id="run-1-1")
    record(bob, call_id="run-1-1")
    assert MeteredLlmCall.objects.count() == 2


@pytest.mark.parametrize("call_id", ["", "x" * 101])
def test_a_call_id_is_1_to_100_characters(alice, catalog, call_id):
    with pytest.raises(ValueError, match="call_id"):
        record(alice, call_id=call_id)
    assert not UsageBucket.objects.exists()


def test_calls_in_one_hour_add_up_in_one_bucket(alice, catalog):
    first = record(alice)
    second = record(alice, at=AT + timedelta(minutes=30), input_tokens=2000, cached_tokens=0)
    assert first.bucket_id == second.bucket_id
    bucket = UsageBucket.objects.get()
    assert (bucket.requests, bucket.input_tokens) == (2, 3000)
    assert bucket.cost_micros == first.cost_micros + second.cost_micros == 435 + 600
    assert UsageDaily.objects.get().cost_micros == 1035


def test_calls_of_different_keys_hours_and_models_are_kept_apart(alice, catalog):
    key = ApiKeyFactory(owner=alice)
    record(alice)
    record(alice, api_key=key)
    record(alice, at=AT + timedelta(hours=1))
    record(alice, provider="anthropic", model="claude-sonnet-4-5-20250929")
    assert UsageBucket.objects.count() == 4
    by_key = {line.key_id: line.figures.requests for line in summary(alice).by_key}
    assert by_key == {None: 3, key.pk: 1}


def summary(owner, **filters):
    return usage_summary(owner=owner, start=AT.date(), end=AT.date(), granularity="day", **filters)


@pytest.mark.parametrize(
    ("provider", "model", "pricing", "cost"),
    [
        ("openai", "gpt-4o-mini", GPT_4O_MINI, 435),
        ("openai", "gpt-4o-mini-2024-07-18", GPT_4O_MINI, 435),
        ("openrouter", "openai/gpt-4o-mini", GPT_4O_MINI, 435),
        # 800 input + 200 cache reads + 500 output tokens at Claude Sonnet 4.5's prices.
        ("anthropic", "claude-sonnet-4-5-20250929", CLAUDE_SONNET, 2400 + 60 + 7500),
        ("anthropic", "claude-sonnet-4.5", CLAUDE_SONNET, 9960),
    ],
)
def test_a_call_is_priced_by_whatever_name_its_provider_gives_the_model(
    alice, catalog, provider, model, pricing, cost
):
    call = record(alice, provider=provider, model=model)
    assert (call.cost_micros, call.priced) == (cost, True)


def test_cached_tokens_cost_the_prompt_price_when_the_catalog_has_no_cache_price(alice, db):
    catalog_model("openai/gpt-4.1", {"prompt": "0.000002", "completion": "0.000008"})
    call = record(alice, model="gpt-4.1-2025-04-14")
    assert call.cost_micros == 1000 * 2 + 500 * 8


def test_a_model_the_catalog_does_not_know_costs_nothing_and_is_logged(alice, catalog, caplog):
    call = record(alice, provider="openai_compatible", model="llama3:8b")
    assert (call.cost_micros, call.cost_source, call.priced) == (0, "computed", False)
    assert UsageBucket.objects.get().requests == 1
    assert "No catalog price for openai_compatible model 'llama3:8b'" in caplog.text


def test_a_model_priced_per_request_costs_nothing_and_is_logged(alice, db, caplog):
    catalog_model("openrouter/auto", {"prompt": "-1", "completion": "-1"})
    call = record(alice, provider="openrouter", model="openrouter/auto")
    assert (call.cost_micros, call.priced) == (0, False)
    assert "No catalog price for openrouter model 'openrouter/auto'" in caplog.text


def test_with_an_empty_catalog_prices_come_from_the_shipped_snapshot(alice, db):
    call = record(alice, model="gpt-4o-mini")
    assert call.priced and call.cost_micros > 0


def test_a_call_is_never_recorded_against_another_users_key(alice, bob, catalog):
    with pytest.raises(ValueError, match="own key"):
        record(alice, api_key=ApiKeyFactory(owner=bob))
    assert not UsageBucket.objects.exists()


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"input_tokens": -1}, "negative"),
        ({"cached_tokens": 5000}, "cannot exceed"),
        ({"model": ""}, "names its model"),
    ],
)
def test_impossible_figures_are_refused(alice, catalog, fields, problem):
    with pytest.raises(ValueError, match=problem):
        record(alice, **fields)
    assert not UsageBucket.objects.exists()


def test_model_names_try_the_catalogs_spellings_most_exact_first():
    assert candidates("anthropic", "claude-3-5-sonnet-20241022") == [
        "anthropic/claude-3-5-sonnet-20241022",
        "anthropic/claude-3-5-sonnet",
        "anthropic/claude-3.5-sonnet",
    ]
    assert candidates("gemini", "gemini-2.5-flash") == ["google/gemini-2.5-flash"]
    assert candidates("openrouter", "openai/gpt-4o") == ["openai/gpt-4o"]
    assert candidates("groq", "llama-3.3-70b-versatile") == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_calls_recorded_at_the_same_moment_all_count():
    owner = UserFactory()
    catalog_model("openai/gpt-4o-mini", GPT_4O_MINI)
    writers, each = 6, 5

    def call(_n: int) -> None:
        for _ in range(each):
            record(owner)

    run_at_once(call, writers)
    bucket = UsageBucket.objects.get(owner=owner)
    calls = writers * each
    assert (bucket.requests, bucket.input_tokens, bucket.cost_micros) == (
        calls,
        1000 * calls,
        435 * calls,
    )
    daily = UsageDaily.objects.get(owner=owner)
    assert (daily.requests, daily.cost_micros) == (calls, 435 * calls)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_the_same_call_recorded_at_the_same_moment_counts_once():
    owner = UserFactory()
    catalog_model("openai/gpt-4o-mini", GPT_4O_MINI)
    writers = 8
    records = run_at_once(lambda _: record(owner, call_id="run-1-1").record_id, writers)
    assert len(set(records)) == 1
    assert MeteredLlmCall.objects.filter(owner=owner).count() == 1
    bucket = UsageBucket.objects.get(owner=owner)
    assert (bucket.requests, bucket.cost_micros) == (1, 435)


# --- Several calls at once (an assistant run on the user's own key, at its end) -----------


def calls(*call_ids, **fields):
    return [LlmCall(call_id=call_id, **{**CALL, **fields}) for call_id in call_ids]


def test_a_run_s_calls_are_recorded_at_once_with_one_write_per_bucket(alice, catalog):
    key = ApiKeyFactory(owner=alice)
    record(alice, api_key=key)  # the hour's bucket and the day's row exist
    later = AT + timedelta(hours=1)
    batch = [*calls("run-1-1", "run-1-2"), *calls("run-1-3", at=later)]
    with CaptureQueriesContext(connection) as captured:
        recorded = usage_record_llm_calls(owner=alice, api_key=key, calls=batch)
    assert [r.record_id for r in recorded] == list(
        MeteredLlmCall.objects.filter(call_id__startswith="run-1-")
        .order_by("call_id")
        .values_list("pk", flat=True)
    )
    assert [r.cost_micros for r in recorded] == [435, 435, 435]
    first_hour, second_hour = UsageBucket.objects.order_by("bucket_start")
    assert (first_hour.requests, first_hour.input_tokens, first_hour.cost_micros) == (
        3,
        3000,
        1305,
    )
    assert (second_hour.requests, second_hour.cost_micros) == (1, 435)
    assert UsageDaily.objects.get().requests == 4
    # One insert for the three records, not one each.
    inserts = [q["sql"] for q in captured.captured_queries if "INSERT INTO" in q["sql"]]
    assert len([sql for sql in inserts if '"usage_meteredllmcall"' in sql]) == 1


def test_a_batch_with_a_call_recorded_before_counts_that_call_once(alice, catalog):
    key = ApiKeyFactory(owner=alice)
    first = record(alice, api_key=key, call_id="run-2-1")
    recorded = usage_record_llm_calls(owner=alice, api_key=key, calls=calls("run-2-1", "run-2-2"))
    assert recorded[0] == first
    assert MeteredLlmCall.objects.count() == 2
    assert UsageBucket.objects.get().requests == 2
    assert UsageDaily.objects.get().requests == 2


def test_a_batch_is_refused_whole_for_another_users_key_or_a_call_twice(alice, bob, catalog):
    with pytest.raises(ValueError, match="own key"):
        usage_record_llm_calls(owner=alice, api_key=ApiKeyFactory(owner=bob), calls=calls("a"))
    with pytest.raises(ValueError, match="once"):
        usage_record_llm_calls(owner=alice, calls=calls("a", "a"))
    with pytest.raises(ValueError, match="call_id"):
        usage_record_llm_calls(owner=alice, calls=calls("b", ""))
    assert not MeteredLlmCall.objects.exists() and not UsageBucket.objects.exists()
