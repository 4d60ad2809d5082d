"""Stripe's webhook: each verified event stored once and applied in the same
transaction. Events may come twice, late and out of order, so every effect is keyed by
what it is about (a checkout session, a charge's refunded total), not by the event."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from billing import stripe_client
from billing.models import BillingAccount, CheckoutSession, CreditLedgerEntry, StripeEvent
from billing.selectors import MICROS_PER_CENT, usd_amount
from billing.services.ledger import Kind, account_lock, entry_post
from core.errors import ApplicationError, Conflict, NotFound

logger = logging.getLogger(__name__)
Status = StripeEvent.Status


class EventProblem(Exception):
    """An event that cannot be applied as it is: stored as failed with this text (Kay's
    words) for an operator to look at and re-process."""


def webhook_event_receive(*, payload: bytes, signature: str) -> StripeEvent:
    """Verify, store once, and apply one webhook delivery.

    A bad or stale signature or a malformed body is refused with a 400 and writes
    nothing. An event already stored is returned as it is (Stripe retries). An event
    that cannot be applied is stored as failed; one Kay does not handle as ignored."""
    try:
        stripe_client.event_construct(payload=payload, signature=signature)
        body = json.loads(payload)
        event_id, event_type = str(body["id"]), str(body["type"])
        if len(event_id) > 255 or len(event_type) > 100:
            raise ValueError("longer than any Stripe id or event type")
        if not isinstance(body["data"]["object"], dict):
            raise TypeError("an event is about an object")
    except (ValueError, KeyError, TypeError):
        raise ApplicationError(
            "Not a Stripe event with a valid signature.", code="invalid_webhook"
        ) from None
    with transaction.atomic():
        event, created = StripeEvent.objects.get_or_create(
            event_id=event_id,
            defaults={"type": event_type, "payload": body, "status": Status.FAILED},
        )
        if created:
            _apply(event)
    return event


def event_reprocess(*, event_id: str, acting_user: User) -> StripeEvent:
    """Apply a failed event again (an operator's action, once its cause is fixed)."""
    with transaction.atomic():
        event = StripeEvent.objects.select_for_update().filter(event_id=event_id).first()
        if event is None:
            raise NotFound("No such Stripe event.")
        if event.status != Status.FAILED:
            raise Conflict("Only a failed event can be re-processed.")
        logger.info("operator %s re-processes Stripe event %s", acting_user.pk, event_id)
        _apply(event)
    return event


def _apply(event: StripeEvent) -> None:
    handler = HANDLERS.get(event.type)
    obj = event.payload["data"]["object"]
    status: str = Status.IGNORED
    error = ""
    if handler is not None:
        try:
            with transaction.atomic():
                status = handler(event, obj)
        except EventProblem as exc:
            status, error = Status.FAILED, str(exc)
        except Exception:
            logger.exception("Stripe event %s (%s) failed", event.event_id, event.type)
            status, error = Status.FAILED, "Unexpected error while applying it (see the logs)."
        if status == Status.FAILED:
            event.account = None  # it may name an account made in the rolled-back savepoint
    event.status, event.error = status, error[:300]
    event.processed_at = None if status == Status.FAILED else timezone.now()
    event.save(update_fields=["status", "error", "processed_at", "account"])
    logger.info("Stripe event %s (%s): %s", event.event_id, event.type, status)


# --- Checkout sessions -------------------------------------------------------------------


def _checkout_session(obj: dict[str, Any]) -> CheckoutSession:
    """Kay's own record of the session in ``obj``. A session Kay did not start (a Payment
    Link or another app on the same Stripe account, whose ``client_reference_id`` anyone
    paying can choose) credits nobody: its event is stored as failed for an operator.
    Kay never loses its record of a session it started: the user gets the Checkout URL
    only after the row is written."""
    session = CheckoutSession.objects.filter(stripe_session_id=str(obj["id"])).first()
    if session is None:
        raise EventProblem(f"No Kay checkout session {obj['id']}.")
    return session


def _session_paid(event: StripeEvent, obj: dict[str, Any]) -> str:
    """Credit the session's ``amount_total`` once it is paid (its reference is the
    session, so ``completed`` and ``async_payment_succeeded`` credit it once)."""
    session = _checkout_session(obj)
    event.account = BillingAccount.objects.filter(user_id=session.user_id).first()
    if obj.get("payment_intent"):
        session.payment_intent_id = str(obj["payment_intent"])
    if obj.get("payment_status") != "paid":
        session.save(update_fields=["payment_intent_id", "updated_at"])
        return Status.PROCESSED  # paid later: async_payment_succeeded or _failed follows
    if str(obj.get("currency", "")).lower() != "usd":
        raise EventProblem(f"Checkout {obj['id']} was paid in {obj.get('currency')}, not USD.")
    amount_cents = session.amount_total  # the pack Kay priced, never what the event says
    if obj.get("amount_total") != amount_cents:
        raise EventProblem(
            f"Checkout {obj['id']} was paid {obj.get('amount_total')!r} cents, "
            f"not the pack's {amount_cents}."
        )
    account = account_lock(user_id=session.user_id)
    event.account = account
    entry_post(
        account,
        kind=Kind.PURCHASE,
        amount_micros=amount_cents * MICROS_PER_CENT,
        reference=f"stripe:{obj['id']}",
        description=f"Credits bought (${usd_amount(amount_cents * MICROS_PER_CENT)})",
    )
    session.status = CheckoutSession.Status.PAID
    session.save(update_fields=["status", "payment_intent_id", "updated_at"])
    return Status.PROCESSED


def _session_closed(new_status: str) -> Callable[[StripeEvent, dict[str, Any]], str]:
    def handle(event: StripeEvent, obj: dict[str, Any]) -> str:
        session = _checkout_session(obj)
        event.account = BillingAccount.objects.filter(user_id=session.user_id).first()
        # A late "failed" or "expired" never undoes a payment already credited.
        CheckoutSession.objects.filter(pk=session.pk, status=CheckoutSession.Status.OPEN).update(
            status=new_status, updated_at=timezone.now()
        )
        return Status.PROCESSED

    return handle


# --- Refunds -----------------------------------------------------------------------------


def _refunded(event: StripeEvent, obj: dict[str, Any]) -> str:
    """Debit what has been refunded of a charge and not debited yet: ``amount_refunded``
    is the charge's running total, so a repeated or older event debits nothing more. A
    refund of credits already spent can leave the balance below zero."""
    # The purchase the charge paid for, once its checkout completed, says whose credits
    # it bought and caps what its refunds take back; before that, the charge's customer.
    purchase = (
        CheckoutSession.objects.filter(payment_intent_id=str(obj["payment_intent"])).first()
        if obj.get("payment_intent")
        else None
    )
    account_id = purchase.user_id if purchase is not None else None
    if account_id is None and obj.get("customer"):
        account_id = (
            BillingAccount.objects.filter(stripe_customer_id=str(obj["customer"]))
            .values_list("user_id", flat=True)
            .first()
        )
    if account_id is None:
        raise EventProblem(f"No Kay account for the customer of charge {obj['id']}.")
    account = account_lock(user_id=account_id)
    event.account = account
    prefix = f"stripe:{obj['id']}:refunded:"
    debited = -sum(
        CreditLedgerEntry.objects.filter(
            account=account, kind=Kind.REFUND, reference__startswith=prefix
        ).values_list("amount_micros", flat=True)
    )
    refunded = int(obj.get("amount_refunded") or 0) * MICROS_PER_CENT
    if purchase is not None and purchase.status == CheckoutSession.Status.PAID:
        refunded = min(refunded, purchase.amount_total * MICROS_PER_CENT)
    if refunded <= debited:
        return Status.IGNORED
    entry_post(
        account,
        kind=Kind.REFUND,
        amount_micros=debited - refunded,
        reference=f"{prefix}{refunded}",
        description=f"Refund of charge {obj['id']}",
    )
    return Status.PROCESSED


HANDLERS: dict[str, Callable[[StripeEvent, dict[str, Any]], str]] = {
    "checkout.session.completed": _session_paid,
    "checkout.session.async_payment_succeeded": _session_paid,
    "checkout.session.async_payment_failed": _session_closed(CheckoutSession.Status.FAILED),
    "checkout.session.expired": _session_closed(CheckoutSession.Status.EXPIRED),
    "charge.refunded": _refunded,
}
