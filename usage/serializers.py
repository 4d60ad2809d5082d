"""API shapes of usage and budgets. Money leaves as decimal strings of dollars, made
exactly from integer micro-dollars (``"12.345678"``), never as floats."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.ids import IdField
from usage.exports import cost_usd

COST_HELP = "US dollars as a decimal string with six decimals, e.g. `12.345678`."


@extend_schema_field(OpenApiTypes.DECIMAL)
class UsdField(serializers.Field):
    """Integer micro-dollars out as a decimal string of dollars."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", COST_HELP)
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value: int) -> str:
        return cost_usd(value)


class FiguresOutputSerializer(serializers.Serializer):
    cost_usd = UsdField(source="cost_micros")
    input_tokens = serializers.IntegerField(help_text="Including cached input tokens.")
    output_tokens = serializers.IntegerField()
    cached_tokens = serializers.IntegerField()
    requests = serializers.IntegerField()


class _LineOutputSerializer(serializers.Serializer):
    """A breakdown line's figures, flat beside what the line is about."""

    cost_usd = UsdField(source="figures.cost_micros")
    input_tokens = serializers.IntegerField(source="figures.input_tokens")
    output_tokens = serializers.IntegerField(source="figures.output_tokens")
    cached_tokens = serializers.IntegerField(source="figures.cached_tokens")
    requests = serializers.IntegerField(source="figures.requests")


class SeriesPointOutputSerializer(_LineOutputSerializer):
    start = serializers.DateTimeField(help_text="The hour's or the UTC day's start.")
    provider = serializers.CharField()
    model = serializers.CharField()


class ModelLineOutputSerializer(_LineOutputSerializer):
    provider = serializers.CharField()
    model = serializers.CharField()


class ProviderLineOutputSerializer(_LineOutputSerializer):
    provider = serializers.CharField()


class KeyLineOutputSerializer(_LineOutputSerializer):
    key_id = serializers.IntegerField(
        allow_null=True, help_text="null: usage of a key not stored in your vault."
    )
    name = serializers.CharField()
    provider = serializers.CharField()
    masked_key = serializers.CharField()


class ProjectLineOutputSerializer(_LineOutputSerializer):
    project_id = serializers.IntegerField(
        allow_null=True, help_text="null: keys in no project, or usage of no stored key."
    )
    name = serializers.CharField()


class BudgetOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="budget_id")
    scope = serializers.ChoiceField(choices=["project", "key"])
    name = serializers.CharField(help_text="The project's or the key's name.")
    project_id = serializers.IntegerField(allow_null=True)
    key_id = serializers.IntegerField(allow_null=True)
    month = serializers.DateField(help_text="The month's first day (UTC).")
    monthly_limit_usd = UsdField(source="limit_micros")
    spent_usd = UsdField(source="spent_micros", help_text="Spent this month. " + COST_HELP)
    percent = serializers.IntegerField(help_text="Share of the limit spent, rounded down.")
    level = serializers.ChoiceField(
        choices=["ok", "warning", "exceeded"],
        help_text="warning from 80 % of the limit, exceeded from 100 %.",
    )


class PeriodOutputSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField(help_text="Inclusive.")
    granularity = serializers.ChoiceField(choices=["day", "hour"])


class UsageOutputSerializer(serializers.Serializer):
    period = PeriodOutputSerializer(source="*")
    totals = FiguresOutputSerializer()
    previous = FiguresOutputSerializer(
        help_text="The same figures for the period of equal length just before."
    )
    series = SeriesPointOutputSerializer(many=True)
    by_model = ModelLineOutputSerializer(many=True)
    by_provider = ProviderLineOutputSerializer(many=True)
    by_key = KeyLineOutputSerializer(many=True)
    by_project = ProjectLineOutputSerializer(many=True)
    budgets = BudgetOutputSerializer(many=True)


def _limit_field() -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=16,
        decimal_places=6,
        min_value=Decimal("0.000001"),
        max_value=Decimal(1_000_000_000),
        help_text="Dollars per calendar month (UTC), e.g. `50` or `12.5`.",
    )


class BudgetInputSerializer(serializers.Serializer):
    project_id = IdField(required=False, help_text="The project to budget (or key_id).")
    key_id = IdField(required=False, help_text="The key to budget (or project_id).")
    monthly_limit_usd = _limit_field()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("project_id" in attrs) == ("key_id" in attrs):
            raise serializers.ValidationError({"project_id": ["Give either project_id or key_id."]})
        return attrs


class BudgetUpdateInputSerializer(serializers.Serializer):
    monthly_limit_usd = _limit_field()
