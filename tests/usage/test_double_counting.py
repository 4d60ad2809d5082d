"""Kay's own calls on a stored key are counted once: when the provider reports that key's
usage (an OpenRouter key's spend, an OpenAI project key attributed through the admin
key), its report wins and Kay's metered record of the same calls is kept for billing but
left out of every figure: the summary, its breakdowns, budgets, the API and the CSVs.
Calls on the server's key always count."""

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from keys.models import ApiKey
from tests.fakes.openrouter_usage import FakeOpenRouterUsage
from tests.keys.factories import ApiKeyFactory, ProjectFactory
from tests.usage.conftest import catalog_model
from tests.usage.factories import BudgetFactory, bucket_row
from usage.models import ExternalKeyLink, MeteredLlmCall, UsageBucket
from usage.selectors import budget_states, budget_warnings, usage_summary
from usage.services import usage_buckets_upsert, usage_record_llm_call
from usage.services.fetching import usage_fetch_for_key

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 5, 12, 30, tzinfo=UTC)
TODAY = NOW.date()
ROUTER_SECRET = "sk-or-v1-" + "ab" * 32
MODEL = "meta-llama/llama-3.3-70b-instruct"
# A dollar per million tokens each way: 500,000 in and 250,000 out cost $0.75.
PRICE = {"prompt": "0.000001", "completion": "0.000001"}
SEVENTY_FIVE_CENTS = 750_000
DAY = {"start": TODAY.isoformat(), "end": TODAY.isoformat()}


@pytest.fixture
def openrouter(settings):
    server = FakeOpenRouterUsage(TODAY).start()
    settings.OPENROUTER_BASE_URL = server.base_url
    settings.KEYS_VALIDATION_TIMEOUT = 2.0
    yield server
    server.stop()


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def priced(db):
    return catalog_model(MODEL, PRICE)


def call(owner, api_key, *, provider="openrouter", model=MODEL, at=NOW, **tokens):
    figures = {"input_tokens": 500_000, "output_tokens": 250_000} | tokens
    return usage_record_llm_call(
        owner=owner,
        api_key=api_key,
        call_id=str(uuid.uuid4()),
        provider=provider,
        model=model,
        at=at,
        **figures,
    )


def today(owner, granularity="day"):
    return usage_summary(owner=owner, start=TODAY, end=TODAY, granularity=granularity)


@pytest.fixture
def router_key(alice, openrouter, frozen, priced):
    """Alice's OpenRouter key in project Web: one $0.75 call Kay made with it, and the
    same $0.75 in the key's spend as OpenRouter reports it."""
    web = ProjectFactory(owner=alice, name="Web")
    key = ApiKeyFactory(
        owner=alice, provider="openrouter", secret=ROUTER_SECRET, project=web, name="router"
    )
    openrouter.add_key(ROUTER_SECRET)
    openrouter.keys[ROUTER_SECRET].usage_daily = 0.75
    openrouter.keys[ROUTER_SECRET].usage_monthly = 0.75
    call(alice, key)
    return key


def fetch(key):
    result = usage_fetch_for_key(api_key_id=key.pk)
    assert result.status == "ok"


# --- An OpenRouter key -----------------------------------------------------------------------


def test_a_metered_call_counts_while_the_provider_has_not_reported_the_key(alice, router_key):
    assert today(alice).totals.cost_micros == SEVENTY_FIVE_CENTS
    assert today(alice).totals.requests == 1


def test_an_openrouter_keys_call_counts_once_after_its_spend_is_fetched(alice, router_key):
    fetch(router_key)

    for granularity in ("day", "hour"):
        summary = today(alice, granularity)
        assert summary.totals.cost_micros == SEVENTY_FIVE_CENTS
        assert [(k.key_id, k.figures.cost_micros) for k in summary.by_key] == [
            (router_key.pk, SEVENTY_FIVE_CENTS)
        ]
        assert [(p.name, p.figures.cost_micros) for p in summary.by_project] == [
            ("Web", SEVENTY_FIVE_CENTS)
        ]
        assert sum(point.figures.cost_micros for point in summary.series) == SEVENTY_FIVE_CENTS
        # The provider's report wins: its key spend carries no tokens or requests.
        assert (summary.totals.input_tokens, summary.totals.requests) == (0, 0)


def test_the_metered_record_billing_refers_to_is_kept(alice, router_key):
    fetch(router_key)

    recorded = MeteredLlmCall.objects.get(owner=alice)
    assert (recorded.api_key_id, recorded.cost_micros) == (router_key.pk, SEVENTY_FIVE_CENTS)
    assert UsageBucket.objects.filter(pk=recorded.bucket_id, source="kay_metered").exists()


def test_budgets_of_the_project_and_the_key_count_the_call_once(alice, router_key):
    BudgetFactory(owner=alice, project=router_key.project, monthly_limit_micros=1_000_000)
    BudgetFactory(owner=alice, project=None, api_key=router_key, monthly_limit_micros=1_000_000)
    fetch(router_key)

    states = budget_states(owner=alice, month=TODAY)
    assert [(s.scope, s.spent_micros, s.percent, s.level) for s in states] == [
        ("project", SEVENTY_FIVE_CENTS, 75, "ok"),
        ("key", SEVENTY_FIVE_CENTS, 75, "ok"),
    ]
    assert budget_warnings(owner=alice, month=TODAY) == []


def test_the_api_and_its_csv_count_the_call_once(alice, alice_api, router_key):
    BudgetFactory(owner=alice, project=router_key.project, monthly_limit_micros=1_000_000)
    fetch(router_key)

    body = alice_api.get("/api/usage", DAY).json()
    assert body["totals"]["cost_usd"] == "0.750000"
    assert [(k["key_id"], k["cost_usd"]) for k in body["by_key"]] == [(router_key.pk, "0.750000")]
    assert [(p["name"], p["cost_usd"]) for p in body["by_project"]] == [("Web", "0.750000")]
    assert [b["spent_usd"] for b in body["budgets"]] == ["0.750000"]

    response = alice_api.get("/api/usage.csv", DAY)
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert sum(float(row["cost_usd"]) for row in rows) == pytest.approx(0.75)


def test_the_usage_page_and_its_csv_count_the_call_once(alice, alice_browser, router_key):
    fetch(router_key)

    page = alice_browser.get("/dashboard/usage/", DAY)
    assert page.context["summary"].totals.cost_micros == SEVENTY_FIVE_CENTS
    download = alice_browser.get("/dashboard/usage.csv", DAY)
    rows = list(csv.DictReader(io.StringIO(download.content.decode())))
    assert sum(float(row["cost_usd"]) for row in rows) == pytest.approx(0.75)


def test_an_openrouter_key_whose_fetch_never_succeeded_still_counts_kays_calls(
    alice, openrouter, frozen, priced
):
    key = ApiKeyFactory(owner=alice, provider="openrouter", secret=ROUTER_SECRET)
    openrouter.add_key(ROUTER_SECRET)
    openrouter.fail("/api/v1/key", 400)
    call(alice, key)

    assert usage_fetch_for_key(api_key_id=key.pk).status == "error"
    assert today(alice).totals.cost_micros == SEVENTY_FIVE_CENTS


def test_a_covered_keys_calls_of_days_before_its_first_fetch_are_left_out(alice, router_key):
    """The documented rule: the provider's report stands for the key's whole history."""
    call(alice, router_key, at=NOW - timedelta(days=1))
    fetch(router_key)

    yesterday = TODAY - timedelta(days=1)
    summary = usage_summary(owner=alice, start=yesterday, end=TODAY, granularity="day")
    assert summary.totals.cost_micros == SEVENTY_FIVE_CENTS


# --- The server's key ------------------------------------------------------------------------


def test_calls_on_the_servers_key_always_count(alice, router_key):
    BudgetFactory(owner=alice, project=router_key.project, monthly_limit_micros=1_000_000)
    call(alice, None, input_tokens=100_000, output_tokens=0)  # $0.10, billed to credits
    fetch(router_key)

    summary = today(alice)
    assert summary.totals.cost_micros == SEVENTY_FIVE_CENTS + 100_000
    assert {k.key_id: k.figures.cost_micros for k in summary.by_key} == {
        router_key.pk: SEVENTY_FIVE_CENTS,
        None: 100_000,
    }
    # The server's key is in no project: the project's budget is the key's spend only.
    assert budget_states(owner=alice, month=TODAY)[0].spent_micros == SEVENTY_FIVE_CENTS


# --- An OpenAI project key attributed through the admin key ----------------------------------


@pytest.fixture
def linked_key(alice, catalog, frozen):
    """Alice's OpenAI project key, which her admin key's usage was attributed to: one call
    Kay made with it (435 micro-dollars at the catalog's price) in the provider's report
    and in Kay's record."""
    ApiKeyFactory(owner=alice, provider="openai", kind=ApiKey.Kind.ADMIN)
    key = ApiKeyFactory(owner=alice, provider="openai", project=ProjectFactory(owner=alice))
    ExternalKeyLink.objects.create(
        owner=alice, provider="openai", external_key_id="key_abc", api_key=key
    )
    usage_buckets_upsert(
        owner=alice,
        source="openai_admin",
        rows=[
            bucket_row(
                bucket_start=NOW.replace(minute=0),
                api_key_id=key.pk,
                external_key_id="key_abc",
                input_tokens=1000,
                output_tokens=500,
                cached_tokens=200,
                requests=1,
                cost_micros=435,
            )
        ],
    )
    call(
        alice,
        key,
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=1000,
        output_tokens=500,
        cached_tokens=200,
    )
    return key


def test_an_attributed_openai_keys_call_counts_once(alice, linked_key):
    assert MeteredLlmCall.objects.get(owner=alice).cost_micros == 435
    BudgetFactory(owner=alice, project=None, api_key=linked_key, monthly_limit_micros=1_000)

    for granularity in ("day", "hour"):
        summary = today(alice, granularity)
        assert (summary.totals.cost_micros, summary.totals.requests) == (435, 1)
        assert (summary.totals.input_tokens, summary.totals.cached_tokens) == (1000, 200)
        assert [(k.key_id, k.figures.cost_micros) for k in summary.by_key] == [(linked_key.pk, 435)]
    assert budget_states(owner=alice, month=TODAY)[0].spent_micros == 435


def test_a_stored_key_no_provider_reports_keeps_its_calls(alice, linked_key):
    other = ApiKeyFactory(owner=alice, provider="openai")
    call(alice, other, provider="openai", model="gpt-4o-mini", input_tokens=1000, output_tokens=0)

    summary = today(alice)
    assert {k.key_id: k.figures.requests for k in summary.by_key} == {linked_key.pk: 1, other.pk: 1}


def test_another_users_links_change_nothing_of_alices(alice, bob, catalog, frozen):
    alices = ApiKeyFactory(owner=alice, provider="openai")
    bobs = ApiKeyFactory(owner=bob, provider="openai")
    ExternalKeyLink.objects.create(
        owner=bob, provider="openai", external_key_id="key_abc", api_key=bobs
    )
    call(alice, alices, provider="openai", model="gpt-4o-mini", input_tokens=1000, output_tokens=0)
    call(bob, bobs, provider="openai", model="gpt-4o-mini", input_tokens=1000, output_tokens=0)

    assert today(alice).totals.requests == 1
    assert today(bob).totals.requests == 0


# --- Query counts ----------------------------------------------------------------------------


def test_the_rule_costs_no_query_of_its_own(
    alice, router_key, linked_key, django_assert_num_queries
):
    BudgetFactory(owner=alice, project=router_key.project, monthly_limit_micros=1_000_000)
    fetch(router_key)
    for granularity in ("day", "hour"):
        with django_assert_num_queries(3):
            today(alice, granularity)
    with django_assert_num_queries(2):
        budget_states(owner=alice, month=TODAY)
