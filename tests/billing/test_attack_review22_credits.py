"""Attack review 22 of the credits' statements compiled once (core.prepared): no bug
found. These guard what the prepared path must keep doing as the ORM did: one hold
settled by several workers at once charges once, the account's lock is refused outside
a transaction, a hold closes once and only its own, amounts of unusual types move the
balance (and ``updated_at``) as save() did, and a post to a vanished account is refused
with nothing written."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import DatabaseError, DataError, connection, transaction
from django.db.transaction import TransactionManagementError

from billing.models import BillingAccount, CreditHold, CreditLedgerEntry
from billing.services import credits_reserve, ledger
from billing.services.ledger import Kind, account_lock, entry_post
from tests.accounts.factories import UserFactory
from tests.billing.credits_helpers import credits_release, credits_settle, fund, llm_call
from tests.helpers.races import run_at_once
from tests.usage.conftest import GPT_4O_MINI, catalog_model

DOLLAR = 1_000_000
CALL_COST = 435  # 800 + 200 cached input and 500 output tokens of gpt-4o-mini
POSTGRESQL = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="prepared and raced on PostgreSQL"
)


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.BILLING_STARTER_GRANT_USD = "0"
    settings.BILLING_MARGIN_PERCENT = "0"
    settings.BILLING_LOW_BALANCE_USD = "0"


@POSTGRESQL
@pytest.mark.django_db(transaction=True)
def test_the_account_lock_is_refused_outside_a_transaction_compiled_or_not():
    user = UserFactory()
    fund(user, DOLLAR)  # compiles the lock's statement
    assert ledger._ACCOUNT_LOCKED._compiled[()] is not None
    with pytest.raises(TransactionManagementError):
        account_lock(user_id=user.pk)
    ledger._ACCOUNT_LOCKED.forget()  # the first call of a process, outside a transaction
    with pytest.raises(TransactionManagementError):
        account_lock(user_id=user.pk)


@POSTGRESQL
@pytest.mark.django_db(transaction=True)
def test_workers_settling_the_same_holds_at_once_charge_each_once():
    catalog_model("openai/gpt-4o-mini", GPT_4O_MINI)
    owner = UserFactory()
    fund(owner, DOLLAR)
    holds = [credits_reserve(user=owner, estimate_micros=1000, reference=f"h{n}") for n in range(4)]
    calls = [llm_call(owner) for _ in range(4)]

    def settle(n: int) -> int:
        entry = credits_settle(hold=holds[n % 4], metered_call=calls[n % 4])
        assert entry is not None
        return entry.pk

    assert len(set(run_at_once(settle, 16))) == 4
    assert BillingAccount.objects.get(user=owner).balance_micros == DOLLAR - 4 * CALL_COST
    assert set(CreditHold.objects.values_list("status", flat=True)) == {"settled"}
    assert CreditLedgerEntry.objects.filter(kind=Kind.USAGE).count() == 4


def test_a_hold_closes_once_and_only_its_own(alice, bob, db):
    catalog_model("openai/gpt-4o-mini", GPT_4O_MINI)
    fund(alice, DOLLAR)
    fund(bob, DOLLAR)
    alices = credits_reserve(user=alice, estimate_micros=1000, reference="alice-1")
    bobs = credits_reserve(user=bob, estimate_micros=1000, reference="bob-1")
    call = llm_call(alice)
    first = credits_settle(hold=alices, metered_call=call)
    again = credits_settle(hold=alices, metered_call=call)
    assert first is not None and again is not None and first.pk == again.pk
    credits_release(hold=alices)  # a settled hold is not released
    assert alices.status == CreditHold.Status.SETTLED
    bobs.refresh_from_db()
    assert bobs.status == CreditHold.Status.OPEN and bobs.closed_at is None
    credits_release(hold=bobs)
    assert bobs.status == CreditHold.Status.RELEASED
    closed_at = bobs.closed_at
    credits_settle(hold=bobs, metered_call=llm_call(bob))  # charged, the hold stays released
    bobs.refresh_from_db()
    assert bobs.status == CreditHold.Status.RELEASED and bobs.closed_at == closed_at
    assert BillingAccount.objects.get(user=alice).balance_micros == DOLLAR - CALL_COST
    assert BillingAccount.objects.get(user=bob).balance_micros == DOLLAR - CALL_COST
    with pytest.raises(ValueError, match="one account"):
        credits_reserve(user=bob, estimate_micros=1000, reference="alice-1")


@pytest.mark.parametrize(
    ("amount", "moved"),
    [(1.9, 1), (Decimal("2.7"), 2), (True, 1), (2**40, 2**40), (-(2**40), -(2**40))],
)
def test_an_amount_of_any_type_moves_the_balance_as_save_did(alice, db, amount, moved):
    fund(alice, DOLLAR)
    before = BillingAccount.objects.get(user=alice)
    with transaction.atomic():
        account = account_lock(user_id=alice.pk)
        entry, _ = entry_post(account, kind=Kind.ADJUSTMENT, amount_micros=amount, reference="u")
    after = BillingAccount.objects.get(user=alice)
    assert after.balance_micros == DOLLAR + moved
    assert CreditLedgerEntry.objects.get(pk=entry.pk).balance_after_micros == DOLLAR + moved
    assert after.updated_at > before.updated_at and account.updated_at == after.updated_at


def test_a_balance_past_bigint_is_refused_and_nothing_posted(alice, db):
    fund(alice, DOLLAR)
    # PostgreSQL refuses it (DataError); SQLite's driver cannot even send it (OverflowError).
    with pytest.raises((DataError, OverflowError)), transaction.atomic():
        entry_post(
            account_lock(user_id=alice.pk),
            kind=Kind.ADJUSTMENT,
            amount_micros=2**63,
            reference="huge",
        )
    assert BillingAccount.objects.get(user=alice).balance_micros == DOLLAR
    assert not CreditLedgerEntry.objects.filter(reference="huge").exists()


def test_a_post_to_a_vanished_account_is_refused_and_nothing_posted(alice, db):
    fund(alice, DOLLAR)
    with transaction.atomic():
        account = account_lock(user_id=alice.pk)
    gone = BillingAccount.objects.get(pk=account.pk)
    gone.pk += 1000
    with pytest.raises(DatabaseError), transaction.atomic():
        entry_post(gone, kind=Kind.ADJUSTMENT, amount_micros=5, reference="gone")
    assert not CreditLedgerEntry.objects.filter(reference="gone").exists()
