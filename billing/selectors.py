"""Reads of billing: balances, ledgers, the packs on offer, checkout sessions, and the
amounts the settings give in dollars, as micro-dollars."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_CEILING, Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import F, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User
from billing.models import BillingAccount, CheckoutSession, CreditHold, CreditLedgerEntry
from core.prepared import PreparedQuery, first_row

MICROS_PER_USD = 1_000_000
MICROS_PER_CENT = 10_000


@dataclass(frozen=True)
class CreditPack:
    """A credit pack on offer: ``id`` is what checkout takes ("10" for $10)."""

    id: str
    amount_micros: int
    label: str


MAX_USD = 1_000_000_000  # a billion dollars: more than any amount Kay parses


class AmountTooLarge(ValueError):
    """A dollar amount over ``MAX_USD``."""


def usd_to_micros(value: str | Decimal, *, signed: bool = False, exact: bool = False) -> int:
    """Dollars ("2.50") as micro-dollars: Kay's one reading of a dollar amount (settings,
    operators' adjustments). A finer fraction is rounded up, or refused when ``exact``; a
    negative amount is refused unless ``signed``. ``ValueError`` saying what is wrong."""
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError("is not a dollar amount") from None
    if not amount.is_finite():
        raise ValueError("is not a dollar amount")
    if amount < 0 and not signed:
        raise ValueError("must be a dollar amount, 0 or more")
    if abs(amount) > MAX_USD:  # before any arithmetic a huge exponent would make slow
        raise AmountTooLarge(f"must be at most {MAX_USD:,} dollars")
    micros = amount * MICROS_PER_USD
    whole = micros.to_integral_value(rounding=ROUND_CEILING)
    if exact and whole != micros:
        raise ValueError("is finer than a micro-dollar (at most 6 decimals)")
    return int(whole)


def usd_amount(micros: int, *, exact: bool = False) -> str:
    """Micro-dollars as dollars: Kay's one way to write an amount. Two decimals
    ("12.50"), more only for a fraction of a cent ("0.000435"); all six when ``exact``
    ("-0.001234", "25.000000", for spreadsheets)."""
    amount = Decimal(int(micros)).scaleb(-6)
    if exact:
        return f"{amount:.6f}"
    return f"{amount:.2f}" if micros % MICROS_PER_CENT == 0 else f"{amount.normalize():f}"


def setting_micros(name: str) -> int:
    """A ``BILLING_*_USD`` setting in micro-dollars; ``ImproperlyConfigured`` naming it."""
    try:
        return usd_to_micros(getattr(settings, name))
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} {exc}") from None


def margin_percent() -> Decimal:
    """``BILLING_MARGIN_PERCENT`` ("12.5" for 12.5 %)."""
    try:
        margin = Decimal(str(settings.BILLING_MARGIN_PERCENT).strip() or "0")
    except InvalidOperation:
        margin = Decimal("NaN")
    if not margin.is_finite() or margin < 0:
        raise ImproperlyConfigured("BILLING_MARGIN_PERCENT must be a percentage, 0 or more")
    return margin


def settings_check() -> None:
    """Every ``BILLING_*`` amount readable, or ``ImproperlyConfigured`` naming it (run at
    start-up, so a typo stops the server instead of a charge)."""
    for name in ("BILLING_STARTER_GRANT_USD", "BILLING_LOW_BALANCE_USD"):
        setting_micros(name)
    if setting_micros("BILLING_RESERVE_USD") <= 0:
        raise ImproperlyConfigured("BILLING_RESERVE_USD must be above 0")
    margin_percent()
    if not settings.BILLING_CREDIT_PACKS or min(settings.BILLING_CREDIT_PACKS) <= 0:
        raise ImproperlyConfigured("BILLING_CREDIT_PACKS must list whole dollar amounts above 0")


def credit_packs() -> list[CreditPack]:
    """The packs ``BILLING_CREDIT_PACKS`` offers, in its order."""
    return [
        CreditPack(id=str(dollars), amount_micros=dollars * MICROS_PER_USD, label=f"${dollars}")
        for dollars in settings.BILLING_CREDIT_PACKS
    ]


def credit_pack_get(pack_id: str) -> CreditPack | None:
    return next((pack for pack in credit_packs() if pack.id == str(pack_id)), None)


def billing_balance(*, user: User) -> int:
    """``user``'s balance in micro-dollars (0 before they have an account)."""
    return _BALANCE.first(user_id=user.pk) or 0


# Read before every /ask on the server's key: compiled once (core.prepared).
_BALANCE: PreparedQuery[int] = PreparedQuery(
    lambda user_id: first_row(
        BillingAccount.objects.filter(user_id=user_id).values_list("balance_micros", flat=True)
    )
)


# An open hold older than this no longer sets credits aside: its caller died between
# reserve and settle/release (a killed worker, a dropped stream, an unexpected error), and
# its credits must not stay locked forever. Far longer than any one LLM call
# (OPENAI_TIMEOUT); settling it late still charges the call.
HOLD_TTL = timedelta(hours=1)


def held_micros(*, account: BillingAccount) -> int:
    """What the account's open holds younger than ``HOLD_TTL`` set aside."""
    total = CreditHold.objects.filter(
        account=account,
        status=CreditHold.Status.OPEN,
        created_at__gt=timezone.now() - HOLD_TTL,
    ).aggregate(total=Sum("amount_micros"))["total"]
    return int(total or 0)


def credits_held_for(*, user: User, reference_prefix: str) -> bool:
    """Whether ``user``'s credits were ever held for a call whose reference starts with
    ``reference_prefix`` (holds are kept once settled or released)."""
    return CreditHold.objects.filter(
        account__user=user, reference__startswith=reference_prefix
    ).exists()


def ledger_entries(*, user: User, month: date | None = None) -> QuerySet[CreditLedgerEntry]:
    """``user``'s ledger entries, newest first; only those of ``month``'s month (UTC) if
    given."""
    entries = CreditLedgerEntry.objects.filter(account__user=user)
    if month is not None:
        entries = entries.filter(created_at__year=month.year, created_at__month=month.month)
    return entries.order_by("-created_at", "-id")


def checkout_session_for(*, user: User, session_id: str) -> CheckoutSession | None:
    """``user``'s own checkout session with Stripe id ``session_id``; None for anyone
    else's or an unknown one."""
    return CheckoutSession.objects.filter(user=user, stripe_session_id=session_id).first()


@dataclass(frozen=True)
class LedgerMismatch:
    account_id: int
    email: str
    balance_micros: int
    entries_micros: int


def ledger_mismatches() -> list[LedgerMismatch]:
    """Accounts whose ledger entries do not sum to their balance (there should be none)."""
    rows = (
        BillingAccount.objects.annotate(entries_sum=Coalesce(Sum("entries__amount_micros"), 0))
        .exclude(entries_sum=F("balance_micros"))
        .values_list("pk", "user__email", "balance_micros", "entries_sum")
        .order_by("pk")
    )
    return [LedgerMismatch(*row) for row in rows]


# The assistant meters each model round of run 42 as ``assistant-run-42-<round>``
# (assistant.services.ask); billing reads that id from the call, never the assistant's
# models, so the arrow stays billing → usage (tests/assistant/test_run_page.py checks
# that the two agree).
_ASSISTANT_CALL = re.compile(r"assistant-run-([0-9]+)-[0-9]+")


def assistant_run_id(call_id: str) -> int | None:
    """The assistant run a metered call's ``call_id`` belongs to; None for any other
    call (a usage charge of something else links nowhere)."""
    match = _ASSISTANT_CALL.fullmatch(call_id)
    return int(match[1]) if match else None
