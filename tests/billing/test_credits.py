"""Credits: the starter grant, holds before LLM calls and their settlement at the metered
cost, operators' adjustments, and a ledger that always sums to the balance — with
concurrent charges on PostgreSQL too."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.utils import timezone

from accounts.services import user_delete
from billing.models import BillingAccount, CreditHold, CreditLedgerEntry
from billing.selectors import (
    HOLD_TTL,
    AmountTooLarge,
    billing_balance,
    ledger_mismatches,
    settings_check,
    usd_amount,
    usd_to_micros,
)
from billing.services import (
    charge_micros,
    credits_adjust,
    credits_charge,
    credits_grant_starter,
    credits_reserve,
)
from billing.services.ledger import Kind, account_lock, entry_post
from billing.templatetags.money import usd_cents
from core.errors import ApplicationError, InsufficientCredits
from tests.accounts.factories import UserFactory
from tests.billing.credits_helpers import credits_release, credits_settle, fund, llm_call
from tests.helpers.races import run_at_once
from tests.usage.conftest import GPT_4O_MINI, catalog_model
from usage.services import usage_record_llm_call

DOLLAR = 1_000_000
CALL_COST = 435  # 800 + 200 cached input and 500 output tokens of gpt-4o-mini


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.BILLING_STARTER_GRANT_USD = "0"
    settings.BILLING_MARGIN_PERCENT = "0"


# --- Starter grant -----------------------------------------------------------------------


def test_a_new_user_gets_the_starter_grant_once(db, settings):
    settings.BILLING_STARTER_GRANT_USD = "1.50"
    user = UserFactory()
    user.name = "Saved again"
    user.save()
    assert credits_grant_starter(user).reference == f"grant:signup:{user.pk}"
    assert billing_balance(user=user) == 1_500_000
    entry = CreditLedgerEntry.objects.get(account__user=user)
    assert (entry.kind, entry.description) == ("grant", "Starter credits")


def test_deleting_the_account_and_signing_up_again_gives_no_second_grant(db, settings):
    """Sign up, spend the grant, delete the account, sign up with the same address (or
    the same one with another case or +tag): the grant came once."""
    settings.BILLING_STARTER_GRANT_USD = "1.00"
    first = UserFactory(email="ann@example.com")
    assert billing_balance(user=first) == DOLLAR
    user_delete(user=first, confirm_email="ann@example.com")
    for email in ("ann@example.com", "Ann+again@Example.com"):
        again = UserFactory(email=email)
        assert billing_balance(user=again) == 0 and credits_grant_starter(again) is None
        user_delete(user=again, confirm_email=again.email)
    assert billing_balance(user=UserFactory(email="bea@example.com")) == DOLLAR


def test_a_user_made_by_the_command_line_gets_the_grant_too(db, settings):
    settings.BILLING_STARTER_GRANT_USD = "1"
    call_command("createsuperuser", email="root@example.com", interactive=False, verbosity=0)
    assert billing_balance(user=BillingAccount.objects.get().user) == DOLLAR


def test_no_grant_when_the_setting_is_zero(db):
    user = UserFactory()
    assert credits_grant_starter(user) is None
    assert not CreditLedgerEntry.objects.exists()


# --- Holds and settlement ----------------------------------------------------------------


def test_a_call_is_charged_its_metered_cost_and_the_hold_closes(alice, db):
    catalog_model("openai/gpt-4o-mini", GPT_4O_MINI)
    fund(alice, DOLLAR)
    hold = credits_reserve(user=alice, estimate_micros=500_000, reference="run-1-1")
    assert (hold.amount_micros, hold.status) == (500_000, "open")
    call = llm_call(alice)
    entry = credits_settle(hold=hold, metered_call=call)
    assert (entry.kind, entry.amount_micros, entry.reference) == (
        "usage",
        -CALL_COST,
        f"usage:{call.record_id}",
    )
    assert entry.metered_call_id == call.record_id
    assert billing_balance(user=alice) == DOLLAR - CALL_COST
    hold.refresh_from_db()
    assert hold.status == "settled" and hold.closed_at is not None


def test_settling_the_same_call_twice_charges_once(alice, db):
    catalog_model("openai/gpt-4o-mini", GPT_4O_MINI)
    fund(alice, DOLLAR)
    hold = credits_reserve(user=alice, estimate_micros=1000, reference="run-1-1")
    call = llm_call(alice, call_id="run-1-1")
    credits_settle(hold=hold, metered_call=call)
    credits_settle(hold=hold, metered_call=llm_call(alice, call_id="run-1-1"))
    assert billing_balance(user=alice) == DOLLAR - CALL_COST
    assert CreditLedgerEntry.objects.filter(kind="usage").count() == 1


def test_a_hold_cannot_be_settled_with_another_users_call(alice, bob, db):
    fund(alice, DOLLAR)
    fund(bob, DOLLAR, reference="test:fund-bob")
    hold = credits_reserve(user=alice, estimate_micros=500_000, reference="run-1-1")
    bobs_call = llm_call(bob)
    with pytest.raises(ValueError):
        credits_settle(hold=hold, metered_call=bobs_call)
    assert (
        billing_balance(user=alice) == DOLLAR
        and not CreditLedgerEntry.objects.filter(kind=Kind.USAGE).exists()
    )
    hold.refresh_from_db()
    assert hold.status == "open"
    # bob's own hold still charges his call.
    bobs_hold = credits_reserve(user=bob, estimate_micros=500_000, reference="run-2-1")
    credits_settle(hold=bobs_hold, metered_call=bobs_call)
    assert billing_balance(user=bob) == DOLLAR - CALL_COST


def test_a_runs_calls_are_charged_together_and_its_holds_closed(alice, db):
    """``credits_charge``: each call its own entry, every hold closed once; charging the
    same calls again charges nothing more."""
    catalog_model("openai/gpt-4o-mini", GPT_4O_MINI)
    fund(alice, DOLLAR)
    holds = [
        credits_reserve(user=alice, estimate_micros=1000, reference=f"run-1-{n}") for n in (1, 3)
    ]
    calls = [llm_call(alice, call_id=f"run-1-{n}") for n in (1, 2, 3)]
    entries = credits_charge(holds=holds, metered_calls=calls)
    assert [e.metered_call_id for e in entries] == [c.record_id for c in calls]
    assert [e.amount_micros for e in entries] == [-CALL_COST] * 3
    assert billing_balance(user=alice) == DOLLAR - 3 * CALL_COST
    for hold in holds:
        assert hold.status == "settled"
        hold.refresh_from_db()
        assert hold.status == "settled" and hold.closed_at is not None
    credits_charge(holds=holds, metered_calls=calls)
    assert billing_balance(user=alice) == DOLLAR - 3 * CALL_COST
    assert CreditLedgerEntry.objects.filter(kind="usage").count() == 3


def test_holds_closed_without_calls_are_released(alice, db):
    fund(alice, DOLLAR)
    hold = credits_reserve(user=alice, estimate_micros=1000, reference="run-1-1")
    assert credits_charge(holds=[hold], metered_calls=[]) == []
    hold.refresh_from_db()
    assert hold.status == "released" and billing_balance(user=alice) == DOLLAR


def test_charging_refuses_another_users_call_or_hold_and_posts_nothing(alice, bob, db):
    fund(alice, DOLLAR)
    fund(bob, DOLLAR)
    alices = credits_reserve(user=alice, estimate_micros=1000, reference="run-1-1")
    bobs = credits_reserve(user=bob, estimate_micros=1000, reference="run-2-1")
    with pytest.raises(ValueError):  # one of the calls is bob's
        credits_charge(holds=[alices], metered_calls=[llm_call(alice), llm_call(bob)])
    with pytest.raises(ValueError):  # holds of two users
        credits_charge(holds=[alices, bobs], metered_calls=[llm_call(alice)])
    with pytest.raises(ValueError):  # a call on credits with no hold to charge it against
        credits_charge(holds=[], metered_calls=[llm_call(alice)])
    assert not CreditLedgerEntry.objects.filter(kind="usage").exists()
    assert set(CreditHold.objects.values_list("status", flat=True)) == {"open"}
    assert billing_balance(user=alice) == billing_balance(user=bob) == DOLLAR


def test_the_margin_is_added_to_the_metered_cost(alice, db, settings):
    settings.BILLING_MARGIN_PERCENT = "20"
    catalog_model("openai/gpt-4o-mini", GPT_4O_MINI)
    fund(alice, DOLLAR)
    hold = credits_reserve(user=alice, estimate_micros=1000, reference="run-1-1")
    entry = credits_settle(hold=hold, metered_call=llm_call(alice))
    assert entry.amount_micros == -522  # 435 × 1.2 = 522


def test_a_fractional_margin_rounds_the_charge_up(alice, db, settings):
    settings.BILLING_MARGIN_PERCENT = "12.5"
    assert charge_micros(435) == 490  # 489.375, rounded up
    assert charge_micros(0) == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BILLING_STARTER_GRANT_USD", "one dollar"),
        ("BILLING_LOW_BALANCE_USD", "-2"),
        ("BILLING_RESERVE_USD", "0"),
        ("BILLING_MARGIN_PERCENT", "ten"),
        ("BILLING_MARGIN_PERCENT", "-5"),
        ("BILLING_CREDIT_PACKS", [10, 0]),
        ("BILLING_CREDIT_PACKS", []),
    ],
)
def test_a_malformed_billing_setting_stops_start_up_naming_it(settings, name, value):
    setattr(settings, name, value)
    with pytest.raises(ImproperlyConfigured, match=name):
        settings_check()


@pytest.mark.parametrize(
    ("text", "signed", "exact", "micros"),
    [
        ("2.50", False, False, 2_500_000),
        (" 0.0000001 ", False, False, 1),  # a fraction of a micro-dollar rounds up
        ("-1.25", True, True, -1_250_000),
        ("1000000000", False, True, 1_000_000_000_000_000),
    ],
)
def test_one_parser_reads_every_dollar_amount(text, signed, exact, micros):
    assert usd_to_micros(text, signed=signed, exact=exact) == micros


@pytest.mark.parametrize(
    ("text", "signed", "exact", "error"),
    [
        ("one dollar", False, False, ValueError),
        ("NaN", True, False, ValueError),
        ("-Infinity", True, False, ValueError),
        ("-2", False, False, ValueError),
        ("0.0000001", True, True, ValueError),
        ("1e999999", True, True, AmountTooLarge),  # refused before any slow arithmetic
        ("-1000000000.01", True, False, AmountTooLarge),
    ],
)
def test_one_parser_refuses_what_is_not_an_amount(text, signed, exact, error):
    with pytest.raises(error):
        usd_to_micros(text, signed=signed, exact=exact)


@pytest.mark.parametrize(
    ("micros", "exact", "text"),
    [
        (12_500_000, False, "12.50"),
        (435, False, "0.000435"),
        (-1_234, False, "-0.001234"),
        (-1_234, True, "-0.001234"),
        (25_000_000, True, "25.000000"),
        (0, True, "0.000000"),
        (9_007_199_254_740_993, False, "9007199254.740993"),  # beyond a float's precision
    ],
)
def test_one_formatter_writes_every_amount(micros, exact, text):
    assert usd_amount(micros, exact=exact) == text


def test_the_whole_cents_headline_cuts_toward_zero_without_floats():
    assert usd_cents(9_007_199_254_749_999) == "$9007199254.74"
    assert usd_cents(-19_999) == "\N{MINUS SIGN}$0.01"
    assert usd_cents(1_999) == "$0.00"


def test_no_balance_means_402_before_any_call(alice, db):
    with pytest.raises(InsufficientCredits) as caught:
        credits_reserve(user=alice, estimate_micros=500_000, reference="run-1-1")
    assert caught.value.status == 402
    assert "add credits or add your own OpenAI key" in caught.value.message
    assert not CreditHold.objects.exists()


def test_open_holds_count_against_what_is_available(alice, db):
    fund(alice, 600_000)
    first = credits_reserve(user=alice, estimate_micros=500_000, reference="run-1-1")
    second = credits_reserve(user=alice, estimate_micros=500_000, reference="run-2-1")
    assert (first.amount_micros, second.amount_micros) == (500_000, 100_000)
    with pytest.raises(InsufficientCredits):
        credits_reserve(user=alice, estimate_micros=500_000, reference="run-3-1")
    credits_release(hold=first)
    assert first.status == "released"
    assert credits_reserve(user=alice, estimate_micros=500_000, reference="run-3-1")


def test_a_hold_never_settled_or_released_stops_locking_the_balance(alice, db):
    """A worker killed between reserve and settle leaves its hold open: after HOLD_TTL it
    no longer sets credits aside, and settling it late still charges the call."""
    fund(alice, 500_000)
    stuck = credits_reserve(user=alice, estimate_micros=500_000, reference="run-1-1")
    with pytest.raises(InsufficientCredits):
        credits_reserve(user=alice, estimate_micros=500_000, reference="run-2-1")
    CreditHold.objects.filter(pk=stuck.pk).update(
        created_at=timezone.now() - HOLD_TTL - timedelta(seconds=1)
    )
    assert credits_reserve(user=alice, estimate_micros=500_000, reference="run-2-1")
    credits_settle(hold=stuck, metered_call=llm_call(alice))
    assert billing_balance(user=alice) == 500_000 - CALL_COST


def test_the_same_hold_reference_is_one_hold(alice, db):
    fund(alice, DOLLAR)
    first = credits_reserve(user=alice, estimate_micros=500_000, reference="run-1-1")
    assert credits_reserve(user=alice, estimate_micros=500_000, reference="run-1-1") == first
    assert CreditHold.objects.count() == 1


def test_a_call_costing_more_than_the_balance_never_takes_it_below_zero(alice, db):
    catalog_model("openai/gpt-4o-mini", GPT_4O_MINI)
    fund(alice, 100)
    hold = credits_reserve(user=alice, estimate_micros=1000, reference="run-1-1")
    entry = credits_settle(hold=hold, metered_call=llm_call(alice))
    assert entry.amount_micros == -100
    assert "335 µ$ not covered" in entry.description
    assert billing_balance(user=alice) == 0


def test_an_unpriced_call_charges_nothing(alice, db):
    fund(alice, DOLLAR)
    hold = credits_reserve(user=alice, estimate_micros=1000, reference="run-1-1")
    call = usage_record_llm_call(
        owner=alice,
        call_id="run-1-1",
        provider="openai_compatible",
        model="llama3:8b",
        input_tokens=10,
        output_tokens=10,
    )
    assert credits_settle(hold=hold, metered_call=call) is None
    hold.refresh_from_db()
    assert hold.status == "settled" and billing_balance(user=alice) == DOLLAR


def test_every_charge_under_the_low_balance_threshold_queues_the_check(
    alice, db, settings, django_capture_on_commit_callbacks, monkeypatch
):
    settings.BILLING_LOW_BALANCE_USD = "2.00"
    queued: list[int] = []
    monkeypatch.setattr("billing.tasks.low_balance_notify.delay", queued.append)
    fund(alice, 2 * DOLLAR)
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            entry_post(
                account_lock(user_id=alice.pk), kind=Kind.USAGE, amount_micros=-1, reference="u:1"
            )
        with transaction.atomic():
            entry_post(
                account_lock(user_id=alice.pk), kind=Kind.USAGE, amount_micros=-1, reference="u:2"
            )
    # Every charge under it queues the check; the service sends once per drop.
    assert queued == [alice.pk, alice.pk]


# --- Adjustments and the check -----------------------------------------------------------


def test_an_operator_adjustment_is_a_ledger_entry_with_their_name(alice, staff, db):
    account = BillingAccount.objects.get_or_create(user=alice)[0]
    entry = credits_adjust(
        account=account, amount_micros=5 * DOLLAR, reason="Goodwill", acting_user=staff
    )
    assert (entry.kind, entry.amount_micros, entry.created_by) == ("adjustment", 5 * DOLLAR, staff)
    # The customer sees the operator's name, never their email address.
    assert entry.description == "Goodwill (by Olive Operator)"
    staff.name = ""
    entry = credits_adjust(account=account, amount_micros=DOLLAR, reason="Sorry", acting_user=staff)
    assert entry.description == "Sorry (by Kay support)" and staff.email not in entry.description
    assert entry.reference.startswith("adjust:")
    credits_adjust(account=account, amount_micros=-DOLLAR, reason="Typo", acting_user=staff)
    assert billing_balance(user=alice) == 5 * DOLLAR == account.balance_micros


@pytest.mark.parametrize(
    ("amount", "reason", "field"),
    [(DOLLAR, " ", "reason"), (0, "Why", "amount"), (-DOLLAR, "Too much", "amount")],
)
def test_an_adjustment_without_reason_amount_or_cover_is_refused(
    alice, staff, db, amount, reason, field
):
    account = BillingAccount.objects.get_or_create(user=alice)[0]
    with pytest.raises(ApplicationError) as caught:
        credits_adjust(account=account, amount_micros=amount, reason=reason, acting_user=staff)
    assert field in caught.value.fields
    assert not CreditLedgerEntry.objects.exists()


def test_billing_check_passes_when_every_ledger_sums_to_its_balance(alice, bob, db, capsys):
    fund(alice, DOLLAR)
    fund(bob, 2 * DOLLAR, reference="test:fund:bob")
    call_command("billing_check")
    assert "All 2 account(s) match their ledger." in capsys.readouterr().out


def test_billing_check_fails_and_lists_an_account_that_does_not_match(alice, db, capsys):
    fund(alice, DOLLAR)
    BillingAccount.objects.filter(user=alice).update(balance_micros=3 * DOLLAR)
    with pytest.raises(CommandError, match="1 account"):
        call_command("billing_check")
    assert "alice@example.com): balance 3.00 USD, entries sum to 1.00 USD" in (
        capsys.readouterr().err
    )


# --- Concurrency -------------------------------------------------------------------------


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_calls_on_credits_for_ten_charge_exactly_ten(settings):
    settings.BILLING_STARTER_GRANT_USD = "0"
    settings.BILLING_LOW_BALANCE_USD = "0"
    catalog_model("openai/gpt-4o-mini", GPT_4O_MINI)
    owner = UserFactory()
    fund(owner, 10 * CALL_COST)

    def call(n: int) -> str:
        try:
            hold = credits_reserve(user=owner, estimate_micros=CALL_COST, reference=f"run-{n}")
        except InsufficientCredits:
            return "refused"
        credits_settle(hold=hold, metered_call=llm_call(owner, call_id=f"run-{n}"))
        return "charged"

    outcomes = run_at_once(call, 20)
    assert sorted(outcomes) == ["charged"] * 10 + ["refused"] * 10
    account = BillingAccount.objects.get(user=owner)
    assert account.balance_micros == 0
    entries = CreditLedgerEntry.objects.filter(account=account)
    assert entries.filter(kind="usage").count() == 10
    assert min(entries.values_list("balance_after_micros", flat=True)) == 0
    assert ledger_mismatches() == []
