"""Attack review 23 (billing side): ``credits_reserve``'s hold sum as a compiled statement
(``_HELD``, core.prepared) and ``credits_charge`` (several calls and holds in one
transaction).

Probed: ``_HELD`` against the ORM aggregate it replaced in every case (no holds, only
another account's, expired, closed, an earlier hold of the same reference from this
account or another, a mix), on PostgreSQL (prepared) and SQLite (the ORM each time, its
dates going as text); that it really is compiled on PostgreSQL with ``since`` a value, not
frozen at its stand-in; ``credits_charge`` by the worker and the reaper at once (charged
once), twice in a row, holds and calls of two users, a hold already closed, calls with
no hold. Found nothing: all kept as guards."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Max, Q, Sum
from django.utils import timezone

from billing.models import BillingAccount, CreditHold, CreditLedgerEntry
from billing.selectors import HOLD_TTL
from billing.services import credits_charge, credits_reserve
from billing.services.credits import _HELD
from billing.services.ledger import account_lock
from core.errors import InsufficientCredits
from tests.accounts.factories import UserFactory
from tests.billing.credits_helpers import fund, llm_call
from tests.helpers.races import run_at_once
from tests.usage.conftest import GPT_4O_MINI, catalog_model

CALL_COST = 435  # credits_helpers.llm_call's cost


def _orm(account_id: int, reference: str, since) -> tuple[int | None, int | None]:
    """The aggregate ``credits_reserve`` ran before 6dfdb55."""
    found = CreditHold.objects.filter(Q(account_id=account_id) | Q(reference=reference)).aggregate(
        held=Sum(
            "amount_micros",
            filter=Q(account_id=account_id, status=CreditHold.Status.OPEN, created_at__gt=since),
        ),
        earlier=Max("account_id", filter=Q(reference=reference)),
    )
    return found["held"], found["earlier"]


def _compiled(account_id: int, reference: str, since) -> tuple[int | None, int | None]:
    return _HELD.first(account_id=account_id, reference=reference, since=since) or (None, None)


def _hold(account, amount, reference, *, status="open", age=timedelta(0)):
    hold = CreditHold.objects.create(
        account=account, amount_micros=amount, reference=reference, status=status
    )
    if age:
        CreditHold.objects.filter(pk=hold.pk).update(created_at=timezone.now() - age)
    return hold


@pytest.mark.django_db
def test_the_compiled_hold_sum_reads_as_the_orm_aggregate_in_every_case():
    alice, bob = UserFactory(), UserFactory()
    mine = account_lock(user_id=alice.pk)
    theirs = account_lock(user_id=bob.pk)
    since = timezone.now() - HOLD_TTL
    cases = []

    def check(label, reference="ref-new"):
        got = (
            _compiled(mine.pk, reference, since),
            _orm(mine.pk, reference, since),
        )
        cases.append((label, *got))
        assert got[0] == got[1], label

    check("no holds at all")
    _hold(theirs, 11, "bob-1")
    check("only another account's hold")
    _hold(mine, 13, "old", age=HOLD_TTL + timedelta(minutes=1))
    check("an expired open hold of mine")
    _hold(mine, 17, "done", status="settled")
    _hold(mine, 19, "let-go", status="released")
    check("closed holds of mine")
    _hold(mine, 23, "open-1")
    _hold(mine, 29, "open-2", age=timedelta(minutes=59))
    check("two open holds, one nearly expired")
    check("an earlier hold of this reference, mine", reference="open-1")
    check("an earlier closed hold of this reference, mine", reference="done")
    check("an earlier hold of this reference, another account's", reference="bob-1")
    assert _compiled(mine.pk, "ref-new", since)[0] == 23 + 29
    assert _compiled(mine.pk, "bob-1", since) == (52, theirs.pk)
    assert _compiled(theirs.pk, "ref-new", since) == (11, None)
    # An account with no holds and a reference nobody used: no row, or a row of NULLs.
    assert _compiled(10**6, "ref-new", since) in ((None, None),)


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="compiled with dates: PostgreSQL")
def test_the_hold_sum_is_compiled_on_postgresql_with_since_a_value_not_its_stand_in():
    alice = UserFactory()
    account = account_lock(user_id=alice.pk)
    _hold(account, 5, "a", age=timedelta(minutes=30))
    now = timezone.now()
    assert _compiled(account.pk, "x", now - HOLD_TTL) == (5, None)
    statement = _HELD._statement_for(
        {"account_id": account.pk, "reference": "x", "since": now - HOLD_TTL}
    )
    assert statement is not None, "not compiled: the ORM runs each time"
    assert set(statement.slots) == {"account_id", "reference", "since"}
    # The same statement with another ``since``: the hold is older than 10 minutes.
    assert _compiled(account.pk, "x", now - timedelta(minutes=10)) == (None, None)


@pytest.mark.django_db
def test_an_expired_hold_no_longer_sets_credits_aside_for_a_new_hold(settings):
    settings.BILLING_STARTER_GRANT_USD = "0"
    alice = UserFactory()
    fund(alice, 1_000)
    account = account_lock(user_id=alice.pk)
    _hold(account, 1_000, "stale", age=HOLD_TTL + timedelta(seconds=5))
    assert credits_reserve(user=alice, estimate_micros=600, reference="r1").amount_micros == 600
    assert credits_reserve(user=alice, estimate_micros=600, reference="r2").amount_micros == 400
    with pytest.raises(InsufficientCredits):
        credits_reserve(user=alice, estimate_micros=1, reference="r3")
    # The same reference again is the same hold, not a new one (nor refused).
    assert credits_reserve(user=alice, estimate_micros=9, reference="r1").amount_micros == 600


@pytest.mark.django_db
def test_a_reference_another_account_used_is_refused_not_shared(settings):
    alice, bob = UserFactory(), UserFactory()
    credits_reserve(user=bob, estimate_micros=10, reference="assistant-run-7-1")
    with pytest.raises(ValueError, match="belongs to one account"):
        credits_reserve(user=alice, estimate_micros=10, reference="assistant-run-7-1")


@pytest.mark.django_db
def test_charging_twice_charges_once_and_a_closed_hold_stays_as_it_was(settings):
    settings.BILLING_MARGIN_PERCENT = "0"
    catalog_model("openai/gpt-4o-mini", GPT_4O_MINI)
    alice = UserFactory()
    hold = credits_reserve(user=alice, estimate_micros=10_000, reference="run-1")
    calls = [llm_call(alice, "run-1"), llm_call(alice, "run-2")]
    before = BillingAccount.objects.get(user=alice).balance_micros
    first = credits_charge(holds=[hold], metered_calls=calls)
    again = credits_charge(holds=[hold], metered_calls=calls)
    assert [e.pk for e in first] == [e.pk for e in again]
    assert BillingAccount.objects.get(user=alice).balance_micros == before - 2 * CALL_COST
    hold.refresh_from_db()
    assert hold.status == "settled"
    # Released afterwards with no calls: a settled hold is not reopened nor re-closed.
    credits_charge(holds=[hold], metered_calls=[])
    hold.refresh_from_db()
    assert hold.status == "settled"


@pytest.mark.django_db
def test_charging_is_refused_for_mixed_users_or_calls_with_no_hold(settings):
    catalog_model("openai/gpt-4o-mini", GPT_4O_MINI)
    alice, bob = UserFactory(), UserFactory()
    alices = credits_reserve(user=alice, estimate_micros=10_000, reference="a-1")
    bobs = credits_reserve(user=bob, estimate_micros=10_000, reference="b-1")
    with pytest.raises(ValueError):
        credits_charge(holds=[alices, bobs], metered_calls=[llm_call(alice)])
    with pytest.raises(ValueError):
        credits_charge(holds=[alices], metered_calls=[llm_call(bob)])
    with pytest.raises(ValueError):
        credits_charge(holds=[], metered_calls=[llm_call(alice)])
    assert not CreditLedgerEntry.objects.filter(kind="usage").exists()
    assert set(CreditHold.objects.values_list("status", flat=True)) == {"open"}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_the_worker_and_the_reaper_charging_the_same_calls_at_once_charge_them_once(settings):
    settings.BILLING_STARTER_GRANT_USD = "0"
    settings.BILLING_LOW_BALANCE_USD = "0"
    settings.BILLING_MARGIN_PERCENT = "0"
    catalog_model("openai/gpt-4o-mini", GPT_4O_MINI)
    owner = UserFactory()
    fund(owner, 100 * CALL_COST)
    holds = [
        credits_reserve(user=owner, estimate_micros=2_000, reference=f"assistant-run-1-{n}")
        for n in (1, 3)
    ]
    calls = [llm_call(owner, f"assistant-run-1-{n}") for n in (1, 2, 3, 4)]
    run_at_once(lambda n: credits_charge(holds=holds, metered_calls=calls), 4)
    account = BillingAccount.objects.get(user=owner)
    assert account.balance_micros == 96 * CALL_COST
    assert CreditLedgerEntry.objects.filter(kind="usage").count() == 4
    assert set(CreditHold.objects.values_list("status", flat=True)) == {"settled"}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_parallel_holds_of_one_user_never_set_aside_more_than_the_balance(settings):
    settings.BILLING_STARTER_GRANT_USD = "0"
    owner = UserFactory()
    fund(owner, 1_000)

    def hold(n: int) -> int:
        try:
            return credits_reserve(
                user=owner, estimate_micros=300, reference=f"assistant-run-{n}-1"
            ).amount_micros
        except InsufficientCredits:
            return 0

    amounts = run_at_once(hold, 8)
    assert sum(amounts) == 1_000 and sorted(amounts)[-4:] == [100, 300, 300, 300]
