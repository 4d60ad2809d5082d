"""Operators in the admin: customers with their balance, the ledger and Stripe events
(read only), adjustments recorded with their name, and re-processing a failed event."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from billing.models import BillingAccount, CreditLedgerEntry, StripeEvent
from billing.selectors import billing_balance
from tests.accounts.factories import UserFactory
from tests.billing.events import checkout_event, deliver
from tests.billing.factories import CheckoutSessionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _settings(settings, webhook_secret):
    settings.BILLING_STARTER_GRANT_USD = "0"


@pytest.fixture
def operator(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def account(alice):
    return BillingAccount.objects.get_or_create(user=alice)[0]


def adjust(operator, account, amount, reason="Goodwill"):
    return operator.post(
        f"/admin/billing/billingaccount/{account.pk}/change/",
        {"adjust_usd": amount, "adjust_reason": reason},
    )


def test_operators_see_customers_with_their_balance(operator, account):
    BillingAccount.objects.filter(pk=account.pk).update(balance_micros=12_500_000)
    listing = operator.get("/admin/billing/billingaccount/").content.decode()
    assert "alice@example.com" in listing and "12.50" in listing
    assert operator.get(f"/admin/billing/billingaccount/{account.pk}/change/").status_code == 200


def test_an_adjustment_is_a_ledger_entry_with_the_operators_name(operator, account, staff):
    response = adjust(operator, account, "5.25", "Refund of a failed run")
    assert response.status_code == 302
    entry = CreditLedgerEntry.objects.get()
    assert (entry.kind, entry.amount_micros, entry.created_by) == ("adjustment", 5_250_000, staff)
    assert entry.description == "Refund of a failed run (by Olive Operator)"
    adjust(operator, account, "-1.25", "Correction")
    assert billing_balance(user=account.user) == 4_000_000
    listing = operator.get("/admin/billing/creditledgerentry/").content.decode()
    assert "Correction (by Olive Operator)" in listing


@pytest.mark.parametrize(
    ("amount", "reason", "message"),
    [
        ("5", "", "Say why."),
        ("abc", "Why", "Enter a non-zero dollar amount"),
        ("0", "Why", "Enter a non-zero dollar amount"),
        ("0.0000001", "Why", "Enter a non-zero dollar amount"),
        ("1e30", "Why", "At most 1,000,000 dollars at a time."),
        ("NaN", "Why", "Enter a non-zero dollar amount"),
        ("-1", "Too much", "That debit is more than the balance."),
    ],
)
def test_a_bad_adjustment_is_refused_with_the_reason(operator, account, amount, reason, message):
    response = adjust(operator, account, amount, reason)
    assert response.status_code == 200 and message in response.content.decode()
    assert not CreditLedgerEntry.objects.exists()
    account.refresh_from_db()
    assert account.balance_micros == 0


def test_saving_the_account_page_without_an_adjustment_changes_nothing(operator, account):
    BillingAccount.objects.filter(pk=account.pk).update(balance_micros=7)
    assert adjust(operator, account, "", "").status_code == 302
    account.refresh_from_db()
    assert account.balance_micros == 7 and not CreditLedgerEntry.objects.exists()


def test_ledger_entries_and_events_cannot_be_edited_or_deleted(operator, account, client):
    deliver(client, checkout_event(session_id="cs_test_nobody", user_id=None))
    event = StripeEvent.objects.get()
    page = operator.get(f"/admin/billing/stripeevent/{event.pk}/change/").content.decode()
    assert "cs_test_nobody" in page and 'name="_save"' not in page
    assert operator.post(f"/admin/billing/stripeevent/{event.pk}/delete/").status_code == 403
    assert operator.get("/admin/billing/creditledgerentry/add/").status_code == 403


def test_a_failed_event_is_reprocessed_once_its_cause_is_fixed(operator, alice, client):
    deliver(client, checkout_event(session_id="cs_test_late", user_id=None))
    event = StripeEvent.objects.get()
    assert event.status == "failed"
    CheckoutSessionFactory(user=alice, stripe_session_id="cs_test_late")  # the cause, fixed
    response = operator.post(
        "/admin/billing/stripeevent/",
        {"action": "reprocess", "_selected_action": [event.pk]},
        follow=True,
    )
    assert "1 event(s) applied, 0 still failing." in response.content.decode()
    event.refresh_from_db()
    assert (event.status, event.error) == ("processed", "")
    assert billing_balance(user=alice) == 10_000_000
    operator.post(
        "/admin/billing/stripeevent/", {"action": "reprocess", "_selected_action": [event.pk]}
    )
    assert billing_balance(user=alice) == 10_000_000  # a processed event is left alone


def test_someone_not_staff_cannot_adjust(alice_browser, account):
    response = adjust(alice_browser, account, "100")
    assert response.status_code == 302 and "/login" in response["Location"]
    assert not CreditLedgerEntry.objects.exists()


def test_staff_without_billing_permissions_cannot_see_or_reprocess_events(alice, client):
    """A support operator (staff, no billing permissions) gets no Stripe events: their
    payloads name customers, and re-processing one moves a balance."""
    support = UserFactory(is_staff=True)
    deliver(client, checkout_event(session_id="cs_test_late", user_id=None))
    event = StripeEvent.objects.get()
    CheckoutSessionFactory(user=alice, stripe_session_id="cs_test_late")
    client.force_login(support)
    assert client.get("/admin/billing/stripeevent/").status_code == 403
    client.post(
        "/admin/billing/stripeevent/", {"action": "reprocess", "_selected_action": [event.pk]}
    )
    event.refresh_from_db()
    assert event.status == "failed" and billing_balance(user=alice) == 0
    # Given the model's change permission, they may.
    support.user_permissions.add(Permission.objects.get(codename="change_stripeevent"))
    support = type(support).objects.get(pk=support.pk)
    client.force_login(support)
    assert client.get("/admin/billing/stripeevent/").status_code == 200
