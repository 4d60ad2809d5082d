"""API shapes of billing: amounts in dollars as text ("12.50") and in micro-dollars."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from billing.models import CreditLedgerEntry
from billing.selectors import usd_amount


class BalanceOutputSerializer(serializers.Serializer):
    balance_usd = serializers.CharField(
        help_text="Dollars, two decimals, more only for a fraction of a cent."
    )
    balance_micros = serializers.IntegerField(help_text="Micro-dollars (1 USD = 1,000,000).")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return {"balance_usd": usd_amount(instance), "balance_micros": instance}


class LedgerEntryOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=CreditLedgerEntry.Kind.choices)
    amount_usd = serializers.SerializerMethodField()
    amount_micros = serializers.IntegerField(help_text="Signed: credits positive.")
    balance_after_usd = serializers.SerializerMethodField()
    balance_after_micros = serializers.IntegerField()
    reference = serializers.CharField()
    description = serializers.CharField()
    usage_record_id = serializers.IntegerField(source="metered_call_id", allow_null=True)
    created_at = serializers.DateTimeField()

    def get_amount_usd(self, entry: CreditLedgerEntry) -> str:
        return usd_amount(entry.amount_micros)

    def get_balance_after_usd(self, entry: CreditLedgerEntry) -> str:
        return usd_amount(entry.balance_after_micros)


class LedgerQueryInputSerializer(serializers.Serializer):
    month = serializers.DateField(
        required=False,
        input_formats=["%Y-%m"],
        help_text="Only entries of this month (UTC), as YYYY-MM.",
        error_messages={"invalid": "Use the form YYYY-MM."},
    )


class CheckoutInputSerializer(serializers.Serializer):
    pack_id = serializers.CharField(max_length=20, help_text="One of the credit packs' ids.")


class UrlOutputSerializer(serializers.Serializer):
    url = serializers.URLField()
