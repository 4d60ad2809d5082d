"""Buying credits: one Stripe Customer per user, a Checkout Session per pack bought, and
the customer portal. Stripe calls happen outside any transaction."""

from __future__ import annotations

from accounts.models import User
from billing import stripe_client
from billing.models import BillingAccount, CheckoutSession
from billing.selectors import MICROS_PER_CENT, credit_pack_get
from billing.services.ledger import billing_account_for
from core.errors import ApplicationError
from core.ratelimit import limit

# Each checkout or portal asks Stripe for a session (and a checkout stores a row): far more
# than anyone buying credits needs, far less than what would spend the Stripe account's
# own API rate limit for every other user.
STRIPE_SESSIONS_RATE = "30/hour"


def _customer_for(user: User) -> str:
    """``user``'s Stripe Customer id, created the first time. Two first checkouts at once
    ask Stripe with the same idempotency key (so get the same customer) and the first
    stored id wins."""
    account = billing_account_for(user)
    if account.stripe_customer_id:
        return account.stripe_customer_id
    customer_id = stripe_client.customer_create(user_id=user.pk, email=user.email)
    BillingAccount.objects.filter(pk=account.pk, stripe_customer_id__isnull=True).update(
        stripe_customer_id=customer_id
    )
    stored = BillingAccount.objects.values_list("stripe_customer_id", flat=True).get(pk=account.pk)
    return stored or customer_id


def checkout_session_start(*, user: User, pack_id: str, success_url: str, cancel_url: str) -> str:
    """Start Stripe Checkout for credit pack ``pack_id``: the URL to send the user to.
    ``success_url`` may hold ``{CHECKOUT_SESSION_ID}``, which Stripe fills in. The
    purchase is credited when Stripe's webhook says it is paid."""
    pack = credit_pack_get(pack_id)
    if pack is None:
        raise ApplicationError(
            "Choose one of the credit packs.", fields={"pack_id": ["Not a credit pack."]}
        )
    limit("stripe_session", user.pk, STRIPE_SESSIONS_RATE)
    amount_cents = pack.amount_micros // MICROS_PER_CENT
    session_id, url = stripe_client.checkout_session_create(
        customer_id=_customer_for(user),
        user_id=user.pk,
        pack_id=pack.id,
        amount_cents=amount_cents,
        product_name=f"Kay credits ({pack.label})",
        success_url=success_url,
        cancel_url=cancel_url,
    )
    CheckoutSession.objects.get_or_create(
        stripe_session_id=session_id,
        defaults={"user": user, "pack_id": pack.id, "amount_total": amount_cents},
    )
    return url


def portal_session_start(*, user: User, return_url: str) -> str:
    """A Stripe customer-portal URL for ``user`` (receipts, payment methods)."""
    limit("stripe_session", user.pk, STRIPE_SESSIONS_RATE)
    return stripe_client.portal_session_create(
        customer_id=_customer_for(user), return_url=return_url
    )
