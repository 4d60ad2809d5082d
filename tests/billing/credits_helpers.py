"""What the credits tests share: a user's account funded, an LLM call metered for them
(gpt-4o-mini: 1,000 input tokens of which 200 cached, 500 output, 435 µ$), and one call
charged or one hold released through ``credits_charge``, as runs do."""

from __future__ import annotations

import uuid

from django.db import transaction

from billing.models import CreditHold, CreditLedgerEntry
from billing.services import credits_charge
from billing.services.ledger import Kind, account_lock, entry_post
from usage.services import MeteredCall, usage_record_llm_call


def fund(user, micros, reference=None):
    """A purchase of ``micros``; the same reference again (by default one per user) adds
    nothing."""
    with transaction.atomic():
        entry_post(
            account_lock(user_id=user.pk),
            kind=Kind.PURCHASE,
            amount_micros=micros,
            reference=reference or f"test:fund:{user.pk}",
        )


def llm_call(user, call_id=None) -> MeteredCall:
    return usage_record_llm_call(
        owner=user,
        call_id=call_id or str(uuid.uuid4()),
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=1000,
        output_tokens=500,
        cached_tokens=200,
    )


def credits_settle(*, hold: CreditHold, metered_call: MeteredCall) -> CreditLedgerEntry | None:
    """One metered call charged against ``hold``, which is closed; the call's entry."""
    (entry,) = credits_charge(holds=[hold], metered_calls=[metered_call])
    return entry


def credits_release(*, hold: CreditHold) -> None:
    """An open hold given back, no call charged."""
    credits_charge(holds=[hold], metered_calls=[])
    hold.refresh_from_db(fields=["status", "closed_at"])
