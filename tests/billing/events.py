"""Stripe webhook deliveries for the tests: real event bodies (tests/fixtures/stripe/)
with the test's user, session and amounts filled in, signed with the test secret as
Stripe signs them."""

from __future__ import annotations

import copy
import json
from typing import Any

import stripe

from tests.fakes.server import load

WEBHOOK_SECRET = "whsec_test_kay_0123456789abcdef"
WEBHOOK_URL = "/billing/stripe/webhook"
COMPLETED = load("stripe/stripe_event_checkout.session.completed_testmode_2025-07_basil.json")
CHARGE = load("stripe/stripe_openapi_fixtures3_objects.json")["charge"]


def checkout_event(
    *,
    session_id: str,
    user_id: int | None,
    amount_total: int = 1000,
    event_id: str = "evt_completed_1",
    event_type: str = "checkout.session.completed",
    payment_status: str = "paid",
    currency: str = "usd",
    customer: str = "cus_fake000001",
    payment_intent: str = "pi_fake_1",
) -> dict[str, Any]:
    """The recorded ``checkout.session.completed`` event, about ``session_id``."""
    event = copy.deepcopy(COMPLETED)
    event.update(id=event_id, type=event_type)
    event["data"]["object"].update(
        id=session_id,
        amount_subtotal=amount_total,
        amount_total=amount_total,
        client_reference_id=str(user_id) if user_id is not None else None,
        metadata={"pack_id": str(amount_total // 100)},
        currency=currency,
        customer=customer,
        payment_intent=payment_intent,
        payment_status=payment_status,
    )
    return event


def refund_event(
    *,
    amount_refunded: int,
    event_id: str,
    amount: int = 1000,
    customer: str | None = "cus_fake000001",
    payment_intent: str = "pi_fake_1",
    charge_id: str = "ch_fake_1",
) -> dict[str, Any]:
    """A ``charge.refunded`` event (the recorded envelope around Stripe's example
    charge): ``amount_refunded`` is the charge's refunded total so far."""
    event = copy.deepcopy(COMPLETED)
    charge = copy.deepcopy(CHARGE)
    charge.update(
        id=charge_id,
        amount=amount,
        amount_captured=amount,
        amount_refunded=amount_refunded,
        captured=True,
        customer=customer,
        payment_intent=payment_intent,
        refunded=amount_refunded >= amount,
    )
    event.update(id=event_id, type="charge.refunded", data={"object": charge})
    return event


def signature(payload: bytes, *, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    """A ``Stripe-Signature`` header for ``payload`` as Stripe computes it."""
    return stripe.WebhookSignature.generate_signature_header(
        payload.decode(errors="replace"), secret, timestamp=at
    )


def deliver(client: Any, event: dict[str, Any] | bytes, **signing: Any) -> Any:
    """POST ``event`` to the webhook as Stripe does, signed."""
    payload = event if isinstance(event, bytes) else json.dumps(event).encode()
    return client.post(
        WEBHOOK_URL,
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature(payload, **signing),
    )
