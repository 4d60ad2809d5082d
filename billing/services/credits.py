"""Paying for LLM calls on the server's key: hold an estimate before the call, settle to
the metered cost after it (or release the hold), so parallel calls cannot spend the
same credits."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import ROUND_CEILING, Decimal

from django.db import transaction
from django.db.models import IntegerField, Max, Q, Sum, Value
from django.utils import timezone

from accounts.models import User
from billing.models import BillingAccount, CreditHold, CreditLedgerEntry
from billing.selectors import HOLD_TTL, margin_percent, setting_micros
from billing.services.ledger import Kind, account_lock, entry_post
from core.errors import InsufficientCredits
from core.prepared import PreparedQuery, PreparedUpdate
from core.prepared_insert import PreparedInsert
from usage.models import MeteredLlmCall
from usage.services import MeteredCall

logger = logging.getLogger(__name__)
NO_CREDITS = "add credits or add your own OpenAI key"


def credits_reserve(*, user: User, estimate_micros: int, reference: str) -> CreditHold:
    """Set aside up to ``estimate_micros`` of ``user``'s available balance (balance less
    open holds) before an LLM call; ``InsufficientCredits`` (402) when nothing is
    available. The same ``reference`` again returns the same hold."""
    if estimate_micros <= 0:
        raise ValueError("a hold sets aside a positive amount")
    with transaction.atomic():
        account = account_lock(user_id=user.pk)
        # Read after the lock, in a statement of its own: a statement's snapshot is taken
        # when it starts, so a sum taken with the lock would miss the holds of the
        # transaction it waited for. One query for both what is held and an earlier hold
        # of this reference.
        held, earlier = _HELD.first(
            account_id=account.pk, reference=reference, since=timezone.now() - HOLD_TTL
        ) or (None, None)
        if earlier is not None:
            if earlier != account.pk:
                raise ValueError("a hold's reference belongs to one account")
            return CreditHold.objects.select_related("account").get(reference=reference)
        available = account.balance_micros - (held or 0)
        if available <= 0:
            raise InsufficientCredits(f"Your credit balance is used up: {NO_CREDITS}.")
        return _HOLDS.create(
            account=account, amount_micros=min(estimate_micros, available), reference=reference
        )


# Each run on credits opens a hold and closes it: compiled once (core.prepared).
_HOLDS: PreparedInsert[CreditHold] = PreparedInsert(CreditHold)
# What the account's open holds younger than ``since`` set aside, and the account of an
# earlier hold of ``reference``: one row (an aggregate over the rows, no grouping).
_HELD: PreparedQuery[tuple[int | None, int | None]] = PreparedQuery(
    lambda account_id, reference, since: (
        CreditHold.objects.filter(Q(account_id=account_id) | Q(reference=reference))
        .order_by()
        .annotate(whole=Value(1, output_field=IntegerField()))
        .values("whole")
        .annotate(
            held=Sum(
                "amount_micros",
                filter=Q(
                    account_id=account_id, status=CreditHold.Status.OPEN, created_at__gt=since
                ),
            ),
            earlier=Max("account_id", filter=Q(reference=reference)),
        )
        .values_list("held", "earlier")
    )
)
_HOLD_CLOSE = PreparedUpdate(
    lambda pk, status, closed_at: (
        CreditHold.objects.filter(pk=pk, status=CreditHold.Status.OPEN),
        {"status": status, "closed_at": closed_at},
    )
)


def credits_holds_lower(*, holds: Sequence[CreditHold], to_micros: int) -> None:
    """Lower open ``holds`` (a run's, in order) to ``to_micros`` together: what its calls
    will be charged once it has answered, not their worst case. In the caller's
    transaction, the one storing the run's end: until the charge (just after the answer
    goes out) the rest of the balance is available to a request sent meanwhile, which
    the whole hold would have refused (402). A charge past the holds is still taken from
    the balance (``credits_charge``)."""
    left = max(to_micros, 0)
    for hold in holds:
        kept = min(hold.amount_micros, left)
        left -= kept
        if kept < hold.amount_micros and _HOLD_LOWER.run(pk=hold.pk, amount_micros=kept):
            hold.amount_micros = kept


_HOLD_LOWER = PreparedUpdate(
    lambda pk, amount_micros: (
        CreditHold.objects.filter(pk=pk, status=CreditHold.Status.OPEN),
        {"amount_micros": amount_micros},
    )
)


def charge_micros(cost_micros: int) -> int:
    """A metered cost with ``BILLING_MARGIN_PERCENT`` added, rounded up."""
    charge = Decimal(cost_micros) * (100 + margin_percent()) / 100
    return int(charge.to_integral_value(rounding=ROUND_CEILING))


def credits_charge(
    *, holds: Sequence[CreditHold], metered_calls: Sequence[MeteredCall]
) -> list[CreditLedgerEntry | None]:
    """Charge each metered call's cost (plus margin) and close ``holds`` (settled, or
    released when no call is charged): a run's calls on the server's key, paid together
    once it has answered. One usage entry per call, referenced by the call's record, so
    charging twice charges once. A charge never takes the balance below zero: whatever
    the holds did not cover and the balance cannot pay is logged, not owed. Each call's
    entry in order (None for one that cost nothing). The holds and the calls are one
    user's."""
    user_ids = {hold.account.user_id for hold in holds}
    if len(user_ids) > 1:
        raise ValueError("holds charged together are one user's")
    if not user_ids:
        if metered_calls:
            raise ValueError("a call on credits is charged against a hold")
        return []
    (user_id,) = user_ids
    _owners_check(user_id, metered_calls)
    # Inside a caller's transaction (calls metered and charged together) it joins it
    # without a savepoint: nothing below is raised on purpose to be caught and carried on.
    with transaction.atomic(savepoint=False):
        account = account_lock(user_id=user_id)
        status = CreditHold.Status.SETTLED if metered_calls else CreditHold.Status.RELEASED
        closed_at = timezone.now()
        closed = [
            hold
            for hold in holds
            if _HOLD_CLOSE.run(pk=hold.pk, status=str(status), closed_at=closed_at)
        ]
        entries = [_usage_post(account, call) for call in metered_calls]
    for hold in closed:
        hold.status, hold.closed_at = status, closed_at
    return entries


def _owners_check(user_id: int, metered_calls: Sequence[MeteredCall]) -> None:
    """Each call must be this account's own: charging another user's record would charge
    their call here (and spend its reference, so never charge it there)."""
    unknown = [call.record_id for call in metered_calls if call.owner_id is None]
    owners = (
        dict(MeteredLlmCall.objects.filter(pk__in=unknown).values_list("pk", "owner_id"))
        if unknown  # records read back rather than just written: ask
        else {}
    )
    for call in metered_calls:
        if (call.owner_id or owners.get(call.record_id)) != user_id:
            raise ValueError("a hold is settled with its own user's metered call")


def _usage_post(account: BillingAccount, metered_call: MeteredCall) -> CreditLedgerEntry | None:
    charge = charge_micros(metered_call.cost_micros)
    if charge <= 0:
        return None
    taken = min(charge, max(account.balance_micros, 0))
    if taken < charge:
        logger.warning(
            "usage record %s: %s µ$ of %s µ$ not covered by account %s",
            metered_call.record_id,
            charge - taken,
            charge,
            account.pk,
        )
    entry, _ = entry_post(
        account,
        kind=Kind.USAGE,
        amount_micros=-taken,
        reference=f"usage:{metered_call.record_id}",
        description=_usage_text(charge, taken),
        metered_call_id=metered_call.record_id,
    )
    return entry


def _usage_text(charge: int, taken: int) -> str:
    text = "Assistant LLM call"
    if taken < charge:
        text += f" ({charge - taken} µ$ not covered by the balance)"
    return text


def reserve_estimate_micros() -> int:
    """``BILLING_RESERVE_USD``: what to hold before a call when the caller has no better
    estimate."""
    return setting_micros("BILLING_RESERVE_USD")
