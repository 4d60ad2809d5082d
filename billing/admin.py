"""Operators see customers with their balance, every ledger entry, hold, checkout session
and Stripe event; they adjust a balance (a ledger entry with their name and reason) and
re-process a failed event. Nothing here edits a balance or an entry directly."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from accounts.authentication import user_of
from billing import services
from billing.models import (
    BillingAccount,
    CheckoutSession,
    CreditHold,
    CreditLedgerEntry,
    StripeEvent,
)
from billing.selectors import MICROS_PER_USD, AmountTooLarge, usd_amount, usd_to_micros
from core.errors import ApplicationError

MAX_ADJUSTMENT_USD = 1_000_000


def _may_delete(request: HttpRequest, model: type[Model]) -> bool:
    # Never from billing's own pages. Deleting a user elsewhere in the admin asks this
    # too, for every row the cascade takes along: refusing there would make anyone with
    # credits undeletable (as usage.admin does).
    opts = model._meta
    match = getattr(request, "resolver_match", None)
    url_name = (match.url_name if match else None) or ""
    return bool(url_name) and not url_name.startswith(f"{opts.app_label}_{opts.model_name}_")


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _may_delete(request, self.model)


class AdjustmentForm(forms.ModelForm):
    """The account page's one editable part: a credit or debit with its reason."""

    adjust_usd = forms.CharField(
        label="Adjust by (USD)",
        required=False,
        help_text="Positive to credit, negative to debit, e.g. 5 or -2.50.",
    )
    adjust_reason = forms.CharField(
        label="Reason",
        required=False,
        max_length=200,
        help_text="Shown in the user's ledger with your name.",
    )

    class Meta:
        model = BillingAccount
        fields: list[str] = []

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        raw = (data.get("adjust_usd") or "").strip()
        if not raw:
            data["adjust_micros"] = 0
            return data
        too_big = f"At most {MAX_ADJUSTMENT_USD:,} dollars at a time."
        try:
            micros = usd_to_micros(raw, signed=True, exact=True)
        except AmountTooLarge:
            self.add_error("adjust_usd", too_big)
            return data
        except ValueError:
            micros = 0  # not an amount, or finer than a micro-dollar
        if abs(micros) > MAX_ADJUSTMENT_USD * MICROS_PER_USD:
            self.add_error("adjust_usd", too_big)
            return data
        if not micros:
            self.add_error("adjust_usd", "Enter a non-zero dollar amount (at most 6 decimals).")
            return data
        if not (data.get("adjust_reason") or "").strip():
            self.add_error("adjust_reason", "Say why.")
        if self.instance.balance_micros + micros < 0:
            self.add_error("adjust_usd", "That debit is more than the balance.")
        data["adjust_micros"] = micros
        return data


@admin.register(BillingAccount)
class BillingAccountAdmin(admin.ModelAdmin):
    form = AdjustmentForm
    list_display = ("user", "balance_usd", "stripe_customer_id", "low_balance_notified_at")
    search_fields = ("user__email", "stripe_customer_id")
    list_select_related = ("user",)
    fields = (
        "user",
        "balance_usd",
        "available_usd",
        "ledger",
        "stripe_customer_id",
        "low_balance_notified_at",
        "created_at",
        "adjust_usd",
        "adjust_reason",
    )
    readonly_fields = (
        "user",
        "balance_usd",
        "available_usd",
        "ledger",
        "stripe_customer_id",
        "low_balance_notified_at",
        "created_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # accounts come with their users

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _may_delete(request, self.model)

    @admin.display(description="Balance (USD)", ordering="balance_micros")
    def balance_usd(self, obj: BillingAccount) -> str:
        return usd_amount(obj.balance_micros)

    @admin.display(description="Available (USD, less open holds)")
    def available_usd(self, obj: BillingAccount) -> str:
        from billing.selectors import held_micros

        return usd_amount(obj.balance_micros - held_micros(account=obj))

    @admin.display(description="Ledger")
    def ledger(self, obj: BillingAccount) -> str:
        url = reverse("admin:billing_creditledgerentry_changelist")
        return format_html('<a href="{}?account__id__exact={}">All entries</a>', url, obj.pk)

    def save_model(
        self, request: HttpRequest, obj: BillingAccount, form: Any, change: bool
    ) -> None:
        # Never obj.save(): the balance it holds may be stale; only a ledger entry moves it.
        micros = form.cleaned_data.get("adjust_micros") or 0
        if not micros:
            return
        try:
            services.credits_adjust(
                account=obj,
                amount_micros=micros,
                reason=form.cleaned_data["adjust_reason"],
                acting_user=user_of(request),
            )
        except ApplicationError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)
            return
        self.message_user(request, f"Adjusted by {usd_amount(micros)} USD.")


@admin.register(CreditLedgerEntry)
class CreditLedgerEntryAdmin(_ReadOnly):
    list_display = (
        "created_at",
        "account",
        "kind",
        "amount_usd",
        "balance_after_usd",
        "reference",
        "description",
        "created_by",
    )
    list_filter = ("kind",)
    search_fields = ("account__user__email", "reference", "description")
    list_select_related = ("account__user", "created_by")
    show_full_result_count = False

    @admin.display(description="Amount (USD)", ordering="amount_micros")
    def amount_usd(self, obj: CreditLedgerEntry) -> str:
        return usd_amount(obj.amount_micros)

    @admin.display(description="Balance after (USD)")
    def balance_after_usd(self, obj: CreditLedgerEntry) -> str:
        return usd_amount(obj.balance_after_micros)


@admin.register(CreditHold)
class CreditHoldAdmin(_ReadOnly):
    list_display = ("created_at", "account", "amount_micros", "status", "reference", "closed_at")
    list_filter = ("status",)
    search_fields = ("account__user__email", "reference")
    list_select_related = ("account__user",)


@admin.register(CheckoutSession)
class CheckoutSessionAdmin(_ReadOnly):
    list_display = ("created_at", "user", "pack_id", "amount_total", "status", "stripe_session_id")
    list_filter = ("status",)
    search_fields = ("user__email", "stripe_session_id", "payment_intent_id")
    list_select_related = ("user",)


@admin.register(StripeEvent)
class StripeEventAdmin(_ReadOnly):
    list_display = ("received_at", "type", "event_id", "status", "account", "error")
    list_filter = ("status", "type")
    search_fields = ("event_id", "type")
    list_select_related = ("account__user",)
    actions = ["reprocess"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Viewing only; the re-process action checks this permission: the model's own
        # "change" permission (any staff member at all would see every event's payload
        # and could apply events).
        return obj is None and admin.ModelAdmin.has_change_permission(self, request, obj)

    @admin.action(description="Re-process the selected failed events", permissions=["change"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet[StripeEvent]) -> None:
        done, still = 0, 0
        for event in queryset.filter(status=StripeEvent.Status.FAILED):
            event = services.event_reprocess(event_id=event.event_id, acting_user=user_of(request))
            if event.status == StripeEvent.Status.FAILED:
                still += 1
            else:
                done += 1
        self.message_user(request, f"{done} event(s) applied, {still} still failing.")
