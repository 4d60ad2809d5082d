"""The one seam to Stripe: the official SDK's ``StripeClient`` pointed at
``STRIPE_API_BASE`` (a fake on 127.0.0.1 in tests). Only billing's services call it.

Stripe's errors become ours: a network failure, 5xx or 429 is ``ProviderUnavailable``,
anything else ``ProviderError``; neither carries Stripe's own text (it can quote the
request). A missing ``STRIPE_SECRET_KEY`` is ``NotConfigured``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import stripe
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from core.errors import NotConfigured, ProviderError, ProviderUnavailable

logger = logging.getLogger(__name__)
T = TypeVar("T")
TIMEOUT = 15  # seconds per request; the SDK retries network errors and 5xx twice


@sensitive_variables("api_key")
def _client() -> stripe.StripeClient:
    api_key = settings.STRIPE_SECRET_KEY
    if not api_key:
        raise NotConfigured(
            "Buying credits is not available on this server.",
            operator_hint="Set STRIPE_SECRET_KEY (and STRIPE_WEBHOOK_SECRET) to enable billing.",
        )
    return stripe.StripeClient(
        api_key=api_key,
        base_addresses={"api": settings.STRIPE_API_BASE},
        http_client=stripe.RequestsClient(timeout=TIMEOUT),
        max_network_retries=2,
    )


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        logger.warning("Stripe unavailable while %s: %s", action, type(exc).__name__)
        raise ProviderUnavailable("Stripe is not answering right now. Try again shortly.") from None
    except stripe.StripeError as exc:
        status = exc.http_status or 0
        logger.error("Stripe refused %s: HTTP %s, code %s", action, status, exc.code)
        if status >= 500:
            raise ProviderUnavailable(
                "Stripe is not answering right now. Try again shortly."
            ) from None
        raise ProviderError("Stripe could not do that. Try again later.") from None


def _call(action: str, request: Callable[[stripe.StripeClient], T]) -> T:
    client = _client()
    with _translated(action):
        return request(client)


def customer_create(*, user_id: int, email: str) -> str:
    """A new Stripe Customer for Kay user ``user_id``: its id. The idempotency key makes
    a retried or concurrent creation for the same user the same customer (for 24 h)."""
    customer = _call(
        "creating a customer",
        lambda client: client.v1.customers.create(
            params={"email": email, "metadata": {"kay_user_id": str(user_id)}},
            options={"idempotency_key": f"kay-customer-{user_id}"},
        ),
    )
    return str(customer.id)


def checkout_session_create(
    *,
    customer_id: str,
    user_id: int,
    pack_id: str,
    amount_cents: int,
    product_name: str,
    success_url: str,
    cancel_url: str,
) -> tuple[str, str]:
    """A one-time Checkout Session (``payment`` mode) for one credit pack: its id and the
    URL to send the user to."""
    session = _call(
        "creating a checkout session",
        lambda client: client.v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "customer": customer_id,
                "client_reference_id": str(user_id),
                "metadata": {"pack_id": pack_id, "kay_user_id": str(user_id)},
                "line_items": [
                    {
                        "price_data": {
                            "currency": "usd",
                            "unit_amount": amount_cents,
                            "product_data": {"name": product_name},
                        },
                        "quantity": 1,
                    }
                ],
                "success_url": success_url,
                "cancel_url": cancel_url,
            }
        ),
    )
    if not session.url:
        raise ProviderError("Stripe did not return a checkout page. Try again later.")
    return str(session.id), str(session.url)


def portal_session_create(*, customer_id: str, return_url: str) -> str:
    """A customer-portal session (receipts, payment methods): the URL to open."""
    session = _call(
        "creating a portal session",
        lambda client: client.v1.billing_portal.sessions.create(
            params={"customer": customer_id, "return_url": return_url}
        ),
    )
    return str(session.url)


@sensitive_variables("secret")
def event_construct(*, payload: bytes, signature: str) -> stripe.Event:
    """The event in ``payload`` if ``signature`` is Stripe's for it with
    ``STRIPE_WEBHOOK_SECRET`` and at most 300 s old; ``ValueError`` otherwise."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise NotConfigured(
            "Stripe webhooks are not set up on this server.",
            operator_hint="Set STRIPE_WEBHOOK_SECRET (from `stripe listen` or the dashboard).",
        )
    try:
        return stripe.Webhook.construct_event(payload, signature, secret, tolerance=300)
    except stripe.SignatureVerificationError:
        raise ValueError("bad or stale signature") from None
    except (ValueError, KeyError, TypeError, AttributeError):  # a body that is not an event
        raise ValueError("malformed event") from None
