"""Buying credits through the real ``stripe`` SDK against the fake Stripe API: one
Customer per user, a payment-mode Checkout Session per pack, the customer portal, and
Stripe's failures as our errors."""

from __future__ import annotations

import pytest

from billing.models import BillingAccount, CheckoutSession
from billing.services import checkout_session_start, portal_session_start
from billing.services.checkout import STRIPE_SESSIONS_RATE
from core.errors import (
    ApplicationError,
    NotConfigured,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)

pytestmark = pytest.mark.django_db

SUCCESS = "https://kay.example.com/dashboard/billing/success/?session_id={CHECKOUT_SESSION_ID}"
CANCEL = "https://kay.example.com/dashboard/billing/cancelled/"


def start(user, pack_id="25"):
    return checkout_session_start(
        user=user, pack_id=pack_id, success_url=SUCCESS, cancel_url=CANCEL
    )


def test_a_checkout_is_a_payment_for_the_pack_naming_the_user(alice, fake_stripe):
    url = start(alice)
    customer_call, session_call = fake_stripe.requests
    assert customer_call.path == "/v1/customers"
    assert customer_call.form["email"] == "alice@example.com"
    assert customer_call.idempotency_key == f"kay-customer-{alice.pk}"
    form = session_call.form
    assert (form["mode"], form["client_reference_id"], form["metadata"]["pack_id"]) == (
        "payment",
        str(alice.pk),
        "25",
    )
    assert form["line_items"] == [
        {
            "price_data": {
                "currency": "usd",
                "unit_amount": "2500",
                "product_data": {"name": "Kay credits ($25)"},
            },
            "quantity": "1",
        }
    ]
    assert (form["success_url"], form["cancel_url"]) == (SUCCESS, CANCEL)
    session = CheckoutSession.objects.get()
    assert url == f"https://checkout.stripe.com/c/pay/{session.stripe_session_id}"
    assert (session.user, session.pack_id, session.amount_total, session.status) == (
        alice,
        "25",
        2500,
        "open",
    )
    account = BillingAccount.objects.get(user=alice)
    assert form["customer"] == account.stripe_customer_id == "cus_fake000001"


def test_a_user_has_one_stripe_customer_however_often_they_buy(alice, bob, fake_stripe):
    start(alice)
    start(alice, pack_id="10")
    portal_session_start(user=alice, return_url="https://kay.example.com/dashboard/billing/")
    start(bob)
    assert len(fake_stripe.customers) == 2
    assert [r.path for r in fake_stripe.requests].count("/v1/customers") == 2
    assert CheckoutSession.objects.filter(user=alice).count() == 2


def test_the_portal_opens_for_the_users_own_customer(alice, fake_stripe):
    url = portal_session_start(user=alice, return_url="https://kay.example.com/back")
    portal_call = fake_stripe.requests[-1]
    assert portal_call.path == "/v1/billing_portal/sessions"
    customer = BillingAccount.objects.get(user=alice).stripe_customer_id
    assert portal_call.form == {"customer": customer, "return_url": "https://kay.example.com/back"}
    assert url.startswith("https://billing.stripe.com/p/session/test_bps_")


@pytest.mark.parametrize("pack_id", ["7", "", "10.5", "x" * 30])
def test_a_pack_not_on_offer_is_refused_before_stripe_is_asked(alice, fake_stripe, pack_id):
    with pytest.raises(ApplicationError) as caught:
        start(alice, pack_id=pack_id)
    assert caught.value.fields == {"pack_id": ["Not a credit pack."]}
    assert fake_stripe.requests == [] and not CheckoutSession.objects.exists()


def test_packs_come_from_the_settings(alice, fake_stripe, settings):
    settings.BILLING_CREDIT_PACKS = [5]
    start(alice, pack_id="5")
    assert fake_stripe.requests[-1].form["line_items"][0]["price_data"]["unit_amount"] == "500"


def test_without_a_secret_key_checkout_says_it_is_not_configured(alice, settings):
    settings.STRIPE_SECRET_KEY = ""
    with pytest.raises(NotConfigured) as caught:
        start(alice)
    assert "STRIPE_SECRET_KEY" in caught.value.operator_hint
    assert not CheckoutSession.objects.exists()


def test_stripe_down_is_try_again_later_and_stores_nothing(alice, fake_stripe, caplog):
    fake_stripe.fail_status = 500
    with pytest.raises(ProviderUnavailable):
        start(alice)
    assert not CheckoutSession.objects.exists()
    assert BillingAccount.objects.get(user=alice).stripe_customer_id is None
    assert "Something broke" not in caplog.text


def test_a_refused_secret_key_is_a_provider_error_without_stripes_words(
    alice, fake_stripe, settings
):
    settings.STRIPE_SECRET_KEY = "sk_test_wrong"
    with pytest.raises(ProviderError) as caught:
        start(alice)
    assert not isinstance(caught.value, ProviderUnavailable)
    assert "Invalid API Key" not in caught.value.message
    assert caught.value.status == 502


def test_checkouts_and_portals_are_rate_limited_per_user(
    alice, bob, fake_stripe, client, one_rate_window
):
    """A script posting to checkout would create a Stripe session (and a row) each time,
    spending the Stripe account's API rate for everyone."""
    allowed = int(STRIPE_SESSIONS_RATE.split("/")[0])
    for _ in range(allowed - 1):
        start(alice)
    portal_session_start(user=alice, return_url="https://kay.example.com/dashboard/billing/")
    calls = len(fake_stripe.requests)
    with pytest.raises(RateLimited):
        start(alice)
    client.force_login(alice)
    response = client.post(
        "/api/billing/checkout", {"pack_id": "10"}, content_type="application/json"
    )
    assert response.status_code == 429 and response["Retry-After"]
    assert len(fake_stripe.requests) == calls and CheckoutSession.objects.count() == allowed - 1
    assert start(bob)  # bob's own budget
