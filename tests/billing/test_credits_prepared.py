"""A model call on credits runs its hold, lock and ledger statements compiled once
(core.prepared) on PostgreSQL, with the ORM's results: the balance, the hold's closing
and the entry as before, a second call building no statement again, and an account with
save receivers still saved through them."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.db.models.signals import post_save
from django.test.utils import CaptureQueriesContext

from billing.models import BillingAccount, CreditHold, CreditLedgerEntry
from billing.services import credits as credits_module
from billing.services import credits_reserve, ledger
from tests.billing.credits_helpers import credits_release, credits_settle, fund, llm_call
from tests.usage.conftest import GPT_4O_MINI, catalog_model

DOLLAR = 1_000_000
PREPARED = (
    ledger._ACCOUNT_LOCKED,
    ledger._POSTED,
    ledger._BALANCE_SET,
    credits_module._HOLD_CLOSE,
    credits_module._HELD,
)


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.BILLING_STARTER_GRANT_USD = "0"
    settings.BILLING_MARGIN_PERCENT = "0"


def call_on_credits(user):
    hold = credits_reserve(user=user, estimate_micros=500_000, reference=str(uuid.uuid4()))
    call = llm_call(user)
    return hold, call, credits_settle(hold=hold, metered_call=call)


def test_a_call_on_credits_is_charged_as_before_and_its_statements_are_compiled_once(
    alice, bob, db
):
    catalog_model("openai/gpt-4o-mini", GPT_4O_MINI)
    fund(alice, DOLLAR)
    fund(bob, DOLLAR)
    hold, call, entry = call_on_credits(alice)
    assert entry is not None and entry.amount_micros == -435
    assert entry.balance_after_micros == DOLLAR - 435 and entry.metered_call_id == call.record_id
    assert CreditLedgerEntry.objects.get(pk=entry.pk).reference == f"usage:{call.record_id}"
    hold.refresh_from_db()
    assert hold.status == CreditHold.Status.SETTLED and hold.closed_at is not None
    account = BillingAccount.objects.get(user=alice)
    assert account.balance_micros == DOLLAR - 435 and account.updated_at is not None
    assert BillingAccount.objects.get(user=bob).balance_micros == DOLLAR  # bob's untouched
    if connection.vendor == "postgresql":
        assert all(None not in p._compiled.values() and p._compiled for p in PREPARED)
    released = credits_reserve(user=bob, estimate_micros=1000, reference=str(uuid.uuid4()))
    credits_release(hold=released)
    assert released.status == CreditHold.Status.RELEASED
    assert BillingAccount.objects.get(user=bob).balance_micros == DOLLAR


def test_an_account_with_save_receivers_is_still_saved_through_them(alice, db):
    catalog_model("openai/gpt-4o-mini", GPT_4O_MINI)
    fund(alice, DOLLAR)
    seen: list[int] = []

    def on_save(sender, instance, **kwargs):
        seen.append(instance.balance_micros)

    post_save.connect(on_save, sender=BillingAccount)
    try:
        with CaptureQueriesContext(connection):
            call_on_credits(alice)
    finally:
        post_save.disconnect(on_save, sender=BillingAccount)
    assert seen == [DOLLAR - 435]
