"""Stripe's webhook: real event bodies, re-signed with the test secret. Each event is
stored once and applied once, whatever order and however often Stripe sends it."""

from __future__ import annotations

import json
import time

import pytest
from django.db import connection
from django.test import Client

from billing.models import BillingAccount, CheckoutSession, CreditLedgerEntry, StripeEvent
from billing.selectors import billing_balance, ledger_mismatches
from tests.accounts.factories import UserFactory
from tests.billing.events import WEBHOOK_URL, checkout_event, deliver, refund_event, signature
from tests.billing.factories import CheckoutSessionFactory
from tests.helpers.races import run_at_once

pytestmark = pytest.mark.django_db

TEN_DOLLARS = 10_000_000


@pytest.fixture(autouse=True)
def _setup(settings, webhook_secret):
    settings.BILLING_STARTER_GRANT_USD = "0"


@pytest.fixture
def session(alice):
    """alice's $10 checkout, as Kay stored it when it started."""
    BillingAccount.objects.update_or_create(
        user=alice, defaults={"stripe_customer_id": "cus_fake000001"}
    )
    return CheckoutSessionFactory(user=alice, stripe_session_id="cs_test_alice_10")


def completed(session, **fields):
    return checkout_event(session_id=session.stripe_session_id, user_id=session.user_id, **fields)


def nothing_written():
    return not (StripeEvent.objects.exists() or CreditLedgerEntry.objects.exists())


def test_a_paid_checkout_is_credited_once(client, alice, session):
    response = deliver(client, completed(session))
    assert response.status_code == 200
    assert response.json() == {"received": True}
    assert billing_balance(user=alice) == TEN_DOLLARS
    entry = CreditLedgerEntry.objects.get()
    assert (entry.kind, entry.amount_micros, entry.balance_after_micros, entry.reference) == (
        "purchase",
        TEN_DOLLARS,
        TEN_DOLLARS,
        "stripe:cs_test_alice_10",
    )
    session.refresh_from_db()
    assert (session.status, session.payment_intent_id) == ("paid", "pi_fake_1")
    event = StripeEvent.objects.get()
    assert (event.event_id, event.type, event.status) == (
        "evt_completed_1",
        "checkout.session.completed",
        "processed",
    )
    assert event.account.user == alice and event.processed_at is not None
    assert event.payload["data"]["object"]["customer_details"]["email"] == "redacted@example.com"


def test_the_same_event_twice_credits_once(client, alice, session):
    event = completed(session)
    assert deliver(client, event).status_code == 200
    assert deliver(client, event).status_code == 200
    assert billing_balance(user=alice) == TEN_DOLLARS
    assert CreditLedgerEntry.objects.count() == StripeEvent.objects.count() == 1


def test_completed_and_async_succeeded_of_one_session_credit_once(client, alice, session):
    deliver(client, completed(session))
    deliver(
        client,
        completed(
            session, event_id="evt_async_ok", event_type="checkout.session.async_payment_succeeded"
        ),
    )
    assert billing_balance(user=alice) == TEN_DOLLARS
    assert StripeEvent.objects.count() == 2


def test_an_unpaid_completion_waits_for_the_async_payment(client, alice, session):
    deliver(client, completed(session, payment_status="unpaid"))
    assert billing_balance(user=alice) == 0
    session.refresh_from_db()
    assert session.status == "open"
    deliver(
        client,
        completed(
            session, event_id="evt_async_ok", event_type="checkout.session.async_payment_succeeded"
        ),
    )
    assert billing_balance(user=alice) == TEN_DOLLARS
    session.refresh_from_db()
    assert session.status == "paid"


def test_a_failed_async_payment_marks_the_checkout_failed_and_credits_nothing(
    client, alice, session
):
    deliver(client, completed(session, payment_status="unpaid"))
    deliver(
        client,
        completed(
            session,
            event_id="evt_async_failed",
            event_type="checkout.session.async_payment_failed",
            payment_status="unpaid",
        ),
    )
    session.refresh_from_db()
    assert session.status == "failed"
    assert billing_balance(user=alice) == 0 and not CreditLedgerEntry.objects.exists()


def test_a_late_failure_never_undoes_a_credited_payment(client, alice, session):
    deliver(client, completed(session))
    deliver(
        client,
        completed(session, event_id="evt_late", event_type="checkout.session.async_payment_failed"),
    )
    session.refresh_from_db()
    assert session.status == "paid" and billing_balance(user=alice) == TEN_DOLLARS


def test_an_expired_checkout_says_so_and_credits_nothing(client, alice, session):
    deliver(
        client,
        completed(
            session,
            event_id="evt_expired",
            event_type="checkout.session.expired",
            payment_status="unpaid",
        ),
    )
    session.refresh_from_db()
    assert session.status == "expired" and billing_balance(user=alice) == 0


@pytest.mark.parametrize("event_type", ["checkout.session.completed", "checkout.session.expired"])
def test_a_checkout_kay_did_not_start_credits_nobody_whatever_user_it_names(
    client, alice, session, event_type
):
    """A Payment Link (or another app) on the same Stripe account lets whoever pays set
    ``client_reference_id``: naming alice's id must not buy her (or anyone) Kay credits."""
    event = checkout_event(
        session_id="cs_test_not_kays", user_id=alice.pk, amount_total=2500, event_type=event_type
    )
    assert deliver(client, event).status_code == 200
    stored = StripeEvent.objects.get()
    assert (stored.status, stored.error) == ("failed", "No Kay checkout session cs_test_not_kays.")
    assert billing_balance(user=alice) == 0
    assert list(CheckoutSession.objects.values_list("stripe_session_id", flat=True)) == [
        "cs_test_alice_10"
    ]


@pytest.mark.parametrize("amount_total", [2500, 999, 0, None, "1000"])
def test_a_paid_amount_other_than_the_packs_is_not_credited(client, alice, session, amount_total):
    """Kay credits the pack it priced for its own session, only when Stripe says that
    exact amount was paid; anything else is left to an operator."""
    event = completed(session)
    event["data"]["object"]["amount_total"] = amount_total
    deliver(client, event)
    stored = StripeEvent.objects.get()
    assert stored.status == "failed" and "not the pack's 1000" in stored.error
    assert billing_balance(user=alice) == 0 and not CreditLedgerEntry.objects.exists()
    session.refresh_from_db()
    assert session.status == "open"


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (
            checkout_event(session_id="cs_test_nobody", user_id=None),
            "No Kay checkout session cs_test_nobody.",
        ),
        (
            refund_event(amount_refunded=500, event_id="evt_r", customer="cus_other"),
            "No Kay account for the customer of charge ch_fake_1.",
        ),
    ],
)
def test_an_event_for_no_known_user_is_stored_as_failed_and_acknowledged(client, db, event, error):
    response = deliver(client, event)
    assert response.status_code == 200
    stored = StripeEvent.objects.get()
    assert (stored.status, stored.error, stored.account) == ("failed", error, None)
    assert not CreditLedgerEntry.objects.exists()


def test_a_payment_in_another_currency_is_not_credited(client, alice, session):
    deliver(client, completed(session, currency="jpy"))
    event = StripeEvent.objects.get()
    assert event.status == "failed" and "jpy, not USD" in event.error
    assert billing_balance(user=alice) == 0


def test_an_event_kay_does_not_handle_is_stored_and_acknowledged(client, db):
    event = checkout_event(session_id="cs_x", user_id=None, event_type="invoice.paid")
    assert deliver(client, event).status_code == 200
    assert StripeEvent.objects.get().status == "ignored"
    assert not CreditLedgerEntry.objects.exists()


# --- Refusals ----------------------------------------------------------------------------


def test_a_bad_signature_is_refused_and_nothing_written(client, alice, session):
    response = deliver(client, completed(session), secret="whsec_someone_else")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_webhook"
    assert nothing_written() and billing_balance(user=alice) == 0


def test_a_stale_signature_is_refused_and_nothing_written(client, alice, session):
    response = deliver(client, completed(session), at=int(time.time()) - 301)
    assert response.status_code == 400
    assert nothing_written()


def test_a_missing_signature_is_refused(client, alice, session):
    payload = json.dumps(completed(session)).encode()
    response = client.post(WEBHOOK_URL, data=payload, content_type="application/json")
    assert response.status_code == 400 and nothing_written()


@pytest.mark.parametrize(
    "payload",
    [b"{not json", b"[]", b'{"id": "evt_1"}', b'{"id": "evt_1", "type": "x", "data": {}}'],
)
def test_a_malformed_body_with_a_good_signature_is_refused(client, db, payload):
    response = deliver(client, payload)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_webhook"
    assert nothing_written()


@pytest.mark.parametrize("field, length", [("id", 256), ("type", 101)])
def test_an_id_or_type_longer_than_stripe_sends_is_refused_not_a_server_error(
    client, db, field, length
):
    # PostgreSQL refuses a value past the column; that was a 500, and Stripe retries a 500.
    event = checkout_event(session_id="cs_x", user_id=None, event_type="invoice.paid")
    event[field] = "x" * length
    response = deliver(client, event)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_webhook"
    assert nothing_written()


def test_a_body_changed_after_signing_is_refused(client, alice, session):
    payload = json.dumps(completed(session)).encode()
    header = signature(payload)
    response = client.post(
        WEBHOOK_URL,
        data=payload.replace(b'"amount_total": 1000', b'"amount_total": 100000'),
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=header,
    )
    assert response.status_code == 400 and nothing_written()


def test_without_a_webhook_secret_the_webhook_is_not_available(client, session, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    response = deliver(client, completed(session))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_configured"
    assert nothing_written()


def test_the_webhook_takes_only_post(client, db):
    assert client.get(WEBHOOK_URL).status_code == 405


# --- Refunds -----------------------------------------------------------------------------


def test_a_refund_debits_the_refunded_amount(client, alice, session):
    deliver(client, completed(session))
    deliver(client, refund_event(amount_refunded=1000, event_id="evt_refund_1"))
    assert billing_balance(user=alice) == 0
    refund = CreditLedgerEntry.objects.get(kind="refund")
    assert (refund.amount_micros, refund.reference) == (
        -TEN_DOLLARS,
        "stripe:ch_fake_1:refunded:10000000",
    )


def test_the_same_refund_twice_debits_once(client, alice, session):
    deliver(client, completed(session))
    refund = refund_event(amount_refunded=1000, event_id="evt_refund_1")
    deliver(client, refund)
    deliver(client, refund)
    assert billing_balance(user=alice) == 0
    assert CreditLedgerEntry.objects.filter(kind="refund").count() == 1


def test_partial_refunds_debit_what_each_adds(client, alice, session):
    deliver(client, completed(session))
    deliver(client, refund_event(amount_refunded=300, event_id="evt_refund_1"))
    deliver(client, refund_event(amount_refunded=750, event_id="evt_refund_2"))
    assert billing_balance(user=alice) == TEN_DOLLARS - 7_500_000
    amounts = sorted(CreditLedgerEntry.objects.filter(kind="refund").values_list("amount_micros"))
    assert amounts == [(-4_500_000,), (-3_000_000,)]


def test_an_older_partial_refund_arriving_last_debits_nothing_more(client, alice, session):
    deliver(client, completed(session))
    deliver(client, refund_event(amount_refunded=750, event_id="evt_refund_2"))
    deliver(client, refund_event(amount_refunded=300, event_id="evt_refund_1"))
    assert billing_balance(user=alice) == TEN_DOLLARS - 7_500_000
    assert StripeEvent.objects.get(event_id="evt_refund_1").status == "ignored"


def test_a_refund_before_its_purchase_ends_at_the_same_balance(client, alice, session):
    deliver(client, refund_event(amount_refunded=400, event_id="evt_refund_1"))
    assert billing_balance(user=alice) == -4_000_000  # Stripe took back money not yet credited
    deliver(client, completed(session))
    assert billing_balance(user=alice) == 6_000_000
    assert ledger_mismatches() == []


def test_a_refund_finds_its_purchase_by_payment_intent_without_a_customer(client, alice, session):
    deliver(client, completed(session))
    deliver(client, refund_event(amount_refunded=1000, event_id="evt_r", customer=None))
    assert billing_balance(user=alice) == 0


def test_a_refund_takes_back_from_its_purchase_never_more_nor_from_another_user(
    client, alice, bob, session
):
    """Once the purchase is known, it (not the charge's customer field) says whose
    credits the refund takes back, and at most what it bought."""
    BillingAccount.objects.update_or_create(user=bob, defaults={"stripe_customer_id": "cus_bob"})
    deliver(client, completed(session))
    event = refund_event(amount_refunded=5000, amount=5000, event_id="evt_r", customer="cus_bob")
    deliver(client, event)
    assert billing_balance(user=alice) == 0 and billing_balance(user=bob) == 0
    assert StripeEvent.objects.get(event_id="evt_r").account.user == alice
    assert ledger_mismatches() == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_the_same_event_delivered_twice_at_once_credits_once(settings):
    settings.BILLING_LOW_BALANCE_USD = "0"
    user = UserFactory()
    session = CheckoutSessionFactory(user=user, stripe_session_id="cs_test_race")
    event = completed(session)
    deliveries = 6
    statuses = run_at_once(lambda _: deliver(Client(), event).status_code, deliveries)
    assert statuses == [200] * deliveries
    assert billing_balance(user=user) == TEN_DOLLARS
    assert StripeEvent.objects.count() == CreditLedgerEntry.objects.count() == 1
