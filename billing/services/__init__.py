"""Billing's writes: accounts and their ledger, buying credits through Stripe, Stripe's
webhook, and paying for LLM calls on the server's key."""

from billing.services.checkout import checkout_session_start, portal_session_start
from billing.services.credits import (
    charge_micros,
    credits_charge,
    credits_holds_lower,
    credits_reserve,
    reserve_estimate_micros,
)
from billing.services.ledger import billing_account_for, credits_adjust, credits_grant_starter
from billing.services.webhooks import event_reprocess, webhook_event_receive

__all__ = [
    "billing_account_for",
    "charge_micros",
    "checkout_session_start",
    "credits_adjust",
    "credits_charge",
    "credits_grant_starter",
    "credits_holds_lower",
    "credits_reserve",
    "event_reprocess",
    "portal_session_start",
    "reserve_estimate_micros",
    "webhook_event_receive",
]
