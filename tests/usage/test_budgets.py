"""Budgets: set per project or key (one each), this month's spend against them from the
rollup, and the API to manage them — the caller's own projects, keys and budgets only."""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine

from core.errors import ApplicationError, NotFound
from tests.helpers.queries import assert_flat_queries
from tests.keys.factories import ApiKeyFactory, ProjectFactory
from tests.usage.factories import BudgetFactory, bucket_row
from usage.models import Budget
from usage.selectors import budget_states, budget_warnings
from usage.services import usage_buckets_upsert
from usage.services.budgets import budget_delete, budget_set

MARCH = datetime(2026, 3, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _march():
    with time_machine.travel(NOW, tick=False):
        yield


def spend(owner, api_key, micros, *, at=MARCH + timedelta(days=3)):
    usage_buckets_upsert(
        owner=owner,
        source="openai_admin",
        rows=[
            bucket_row(
                api_key_id=api_key.pk if api_key else None,
                external_key_id=f"k_{api_key.pk if api_key else 'none'}_{at:%d}",
                bucket_start=at,
                cost_micros=micros,
            )
        ],
    )


@pytest.fixture
def web(alice):
    return ApiKeyFactory(owner=alice, name="web", project=ProjectFactory(owner=alice, name="Web"))


# --- Services ------------------------------------------------------------------------------


def test_setting_a_budget_twice_changes_its_limit(alice, web):
    first = budget_set(acting_user=alice, project=web.project, monthly_limit_micros=50_000_000)
    again = budget_set(acting_user=alice, project=web.project, monthly_limit_micros=80_000_000)
    assert again.pk == first.pk
    assert Budget.objects.get().monthly_limit_micros == 80_000_000


def test_a_project_and_a_key_each_have_their_own_budget(alice, web):
    budget_set(acting_user=alice, project=web.project, monthly_limit_micros=1)
    budget_set(acting_user=alice, api_key=web, monthly_limit_micros=2)
    assert sorted(Budget.objects.values_list("monthly_limit_micros", flat=True)) == [1, 2]


@pytest.mark.parametrize("limit", [0, -5, 10**15 + 1])
def test_a_limit_out_of_range_is_refused(alice, web, limit):
    with pytest.raises(ApplicationError, match="monthly budget"):
        budget_set(acting_user=alice, project=web.project, monthly_limit_micros=limit)
    assert not Budget.objects.exists()


def test_a_budget_needs_exactly_one_scope(alice, web):
    with pytest.raises(ApplicationError, match="not both"):
        budget_set(acting_user=alice, project=web.project, api_key=web, monthly_limit_micros=1)
    with pytest.raises(ApplicationError, match="not both"):
        budget_set(acting_user=alice, monthly_limit_micros=1)


def test_alice_cannot_budget_bobs_project_or_key(alice, bob):
    bobs_key = ApiKeyFactory(owner=bob, project=ProjectFactory(owner=bob))
    with pytest.raises(NotFound):
        budget_set(acting_user=alice, project=bobs_key.project, monthly_limit_micros=1)
    with pytest.raises(NotFound):
        budget_set(acting_user=alice, api_key=bobs_key, monthly_limit_micros=1)
    with pytest.raises(NotFound):
        budget_delete(acting_user=alice, budget=BudgetFactory(owner=bob))
    assert Budget.objects.count() == 1


# --- States --------------------------------------------------------------------------------


def test_a_budget_state_is_this_months_spend_of_its_project_or_key(alice, web):
    other = ApiKeyFactory(owner=alice, project=web.project)
    spend(alice, web, 30_000_000)
    spend(alice, other, 12_000_000)
    spend(alice, web, 99_000_000, at=MARCH - timedelta(days=1))  # February
    spend(alice, None, 5_000_000)  # no stored key: no project
    project_budget = BudgetFactory(owner=alice, project=web.project)  # $50
    key_budget = BudgetFactory(
        owner=alice, project=None, api_key=web, monthly_limit_micros=30_000_000
    )
    states = {s.budget_id: s for s in budget_states(owner=alice, month=date(2026, 3, 20))}
    project, key = states[project_budget.pk], states[key_budget.pk]
    assert (project.scope, project.name, project.spent_micros) == ("project", "Web", 42_000_000)
    assert (project.percent, project.level) == (84, "warning")
    assert (key.scope, key.name, key.key_id, key.spent_micros) == ("key", "web", web.pk, 30_000_000)
    assert (key.percent, key.level) == (100, "exceeded")
    assert project.month == key.month == date(2026, 3, 1)
    assert [s.budget_id for s in budget_warnings(owner=alice, month=date(2026, 3, 1))] == [
        key_budget.pk,
        project_budget.pk,
    ]


@pytest.mark.parametrize(
    ("spent", "level"),
    [(0, "ok"), (39_999_999, "ok"), (40_000_000, "warning"), (50_000_000, "exceeded")],
)
def test_the_level_turns_at_80_and_100_percent(alice, web, spent, level):
    if spent:
        spend(alice, web, spent)
    BudgetFactory(owner=alice, project=web.project)
    assert budget_states(owner=alice, month=NOW.date())[0].level == level


def test_budget_states_are_two_queries_at_any_number_of_budgets(alice, django_assert_num_queries):
    for _ in range(5):
        key = ApiKeyFactory(owner=alice, project=ProjectFactory(owner=alice))
        spend(alice, key, 1_000)
        BudgetFactory(owner=alice, project=key.project)
        BudgetFactory(owner=alice, project=None, api_key=key)
    with django_assert_num_queries(2):
        assert len(budget_states(owner=alice, month=NOW.date())) == 10


def test_an_owner_without_budgets_costs_one_query(charlie, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert budget_warnings(owner=charlie, month=NOW.date()) == []


# --- API -----------------------------------------------------------------------------------


def test_the_api_sets_lists_changes_and_removes_a_budget(alice_api, alice, web):
    spend(alice, web, 21_000_000)
    created = alice_api.post(
        "/api/usage/budgets",
        {"project_id": web.project_id, "monthly_limit_usd": "25.50"},
        format="json",
    )
    assert created.status_code == 201
    body = created.json()
    assert body | {"id": None} == {
        "id": None,
        "scope": "project",
        "name": "Web",
        "project_id": web.project_id,
        "key_id": None,
        "month": "2026-03-01",
        "monthly_limit_usd": "25.500000",
        "spent_usd": "21.000000",
        "percent": 82,
        "level": "warning",
    }
    assert alice_api.get("/api/usage/budgets").json() == [body]
    url = f"/api/usage/budgets/{body['id']}"
    changed = alice_api.patch(url, {"monthly_limit_usd": 100}, format="json")
    assert changed.status_code == 200
    assert (changed.json()["monthly_limit_usd"], changed.json()["level"]) == ("100.000000", "ok")
    assert alice_api.delete(url).status_code == 204
    assert alice_api.get("/api/usage/budgets").json() == []


def test_the_api_budgets_a_key(alice_api, web):
    response = alice_api.post(
        "/api/usage/budgets", {"key_id": web.pk, "monthly_limit_usd": "5"}, format="json"
    )
    assert response.status_code == 201
    assert (response.json()["scope"], response.json()["key_id"]) == ("key", web.pk)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"monthly_limit_usd": "5"}, "project_id"),
        ({"project_id": "{project}", "key_id": "{key}", "monthly_limit_usd": "5"}, "project_id"),
        ({"project_id": "{project}"}, "monthly_limit_usd"),
        ({"project_id": "{project}", "monthly_limit_usd": "0"}, "monthly_limit_usd"),
        ({"project_id": "{project}", "monthly_limit_usd": "-1"}, "monthly_limit_usd"),
        ({"project_id": "{project}", "monthly_limit_usd": "lots"}, "monthly_limit_usd"),
        ({"project_id": "{project}", "monthly_limit_usd": "1e12"}, "monthly_limit_usd"),
        ({"project_id": "abc", "monthly_limit_usd": "5"}, "project_id"),
    ],
)
def test_a_bad_budget_is_a_400_naming_the_field(alice_api, web, body, field):
    ids = {"{project}": web.project_id, "{key}": web.pk}
    body = {name: ids.get(value, value) for name, value in body.items()}
    response = alice_api.post("/api/usage/budgets", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not Budget.objects.exists()


def test_a_bad_limit_change_is_a_400_and_changes_nothing(alice, alice_api):
    budget = BudgetFactory(owner=alice)
    response = alice_api.patch(
        f"/api/usage/budgets/{budget.pk}", {"monthly_limit_usd": "0"}, format="json"
    )
    assert response.status_code == 400
    budget.refresh_from_db()
    assert budget.monthly_limit_micros == 50_000_000


def test_bob_can_neither_see_nor_touch_alices_budgets(alice, bob_api, web):
    budget = BudgetFactory(owner=alice, project=web.project)
    assert bob_api.get("/api/usage/budgets").json() == []
    url = f"/api/usage/budgets/{budget.pk}"
    assert bob_api.patch(url, {"monthly_limit_usd": "1"}, format="json").status_code == 404
    assert bob_api.delete(url).status_code == 404
    for scope in ({"project_id": web.project_id}, {"key_id": web.pk}):
        response = bob_api.post(
            "/api/usage/budgets", {**scope, "monthly_limit_usd": "1"}, format="json"
        )
        assert response.status_code == 404
    budget.refresh_from_db()
    assert budget.monthly_limit_micros == 50_000_000 and Budget.objects.count() == 1


def test_the_budget_list_query_count_is_flat(alice, alice_api):
    def add_row():
        key = ApiKeyFactory(owner=alice, project=ProjectFactory(owner=alice))
        spend(alice, key, 1_000)
        BudgetFactory(owner=alice, project=key.project)

    assert_flat_queries(alice_api, "/api/usage/budgets", add_row, rows=20)
