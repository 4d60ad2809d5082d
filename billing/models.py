"""Prepaid credits: one account per user with its balance, the append-only ledger that
explains it, holds taken before an LLM call, and what Stripe told us.

Amounts are integer micro-dollars (1 USD = 1,000,000), never floats; Stripe's own amounts
(``amount_total``) stay in cents as Stripe sends them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class BillingAccount(models.Model):
    """A user's credit balance. It changes only together with a ledger entry, in one
    transaction holding this row's lock, so the entries always sum to it. Usage charges
    never take it below zero; only a refund of credits already spent can."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="billing_account"
    )
    balance_micros = models.BigIntegerField(default=0)
    # The user's one Stripe Customer, created with their first checkout.
    stripe_customer_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    # When the low-balance email for the current drop went. Never cleared: a later drop
    # sends again once a ledger entry since then shows the balance back at or above the
    # threshold (see billing.services.low_balance).
    low_balance_notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"credits of {self.user}"


class CreditLedgerEntry(models.Model):
    """One change of a balance: never edited or deleted. ``reference`` names the effect
    (a Stripe session or refund, a metered call, a sign-up grant, an operator's
    adjustment) and is unique, so nothing is credited or charged twice."""

    class Kind(models.TextChoices):
        GRANT = "grant", "Grant"
        PURCHASE = "purchase", "Purchase"
        USAGE = "usage", "Usage"
        REFUND = "refund", "Refund"
        ADJUSTMENT = "adjustment", "Adjustment"

    account = models.ForeignKey(BillingAccount, on_delete=models.CASCADE, related_name="entries")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    amount_micros = models.BigIntegerField()  # signed: credits positive, charges negative
    balance_after_micros = models.BigIntegerField()
    reference = models.CharField(max_length=200, unique=True)
    description = models.CharField(max_length=300, blank=True)
    # The operator who made an adjustment; None for everything Kay did by itself.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    metered_call = models.ForeignKey(
        "usage.MeteredLlmCall",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "credit ledger entry"
        verbose_name_plural = "credit ledger entries"
        indexes = [
            models.Index(fields=["account", "created_at"], name="billing_entry_account_time")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount_micros} µ$ ({self.reference})"


class CreditHold(models.Model):
    """Credits set aside before an LLM call on the server's key, so parallel calls cannot
    spend the same credits; settled to the metered cost (a ledger entry) or released.
    Not a ledger entry: the ledger says only what was charged."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        SETTLED = "settled", "Settled"
        RELEASED = "released", "Released"

    account = models.ForeignKey(BillingAccount, on_delete=models.CASCADE, related_name="holds")
    amount_micros = models.PositiveBigIntegerField()
    reference = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["account"],
                condition=models.Q(status="open"),
                name="billing_hold_open",
            )
        ]

    def __str__(self) -> str:
        return f"hold {self.reference} ({self.status})"


class StripeEvent(models.Model):
    """A webhook event as Stripe sent it (signature checked), stored once and applied in
    the same transaction; the admin re-processes one that failed."""

    class Status(models.TextChoices):
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored (nothing to do)"
        FAILED = "failed", "Failed"

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    # The event body as received (Stripe never puts card numbers or secrets in events).
    payload = models.JSONField()
    # The account the event concerned, once known.
    account = models.ForeignKey(
        BillingAccount, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices)
    # Kay's own words for the operator, never Stripe's response text.
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "Stripe event"

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class CheckoutSession(models.Model):
    """A Stripe Checkout Session Kay started: its success page tells "processing" from
    "credited" for its own user only."""

    class Status(models.TextChoices):
        OPEN = "open", "Processing"
        PAID = "paid", "Credited"
        FAILED = "failed", "Payment failed"
        EXPIRED = "expired", "Expired"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="checkout_sessions"
    )
    stripe_session_id = models.CharField(max_length=255, unique=True)
    pack_id = models.CharField(max_length=20)
    amount_total = models.PositiveIntegerField()  # cents, as Stripe counts them
    # Set once the session completes: how a refunded charge finds its purchase.
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"checkout {self.stripe_session_id} ({self.status})"


class StarterGrantClaim(models.Model):
    """An email address that has had the starter grant, kept (as a digest, not the
    address) after its user is deleted, so deleting an account and signing up again with
    the same address does not grant the credits again."""

    email_digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"starter grant claim {self.email_digest[:12]}…"
