"""The usage filters, shared by the Usage page, ``GET /api/usage`` and its CSV."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django import forms

from core.ids import parse_id
from keys.models import ApiKey, Project
from usage.models import Granularity
from usage.selectors import MAX_DAYS

DATE_FORMAT = "%Y-%m-%d"
# The days a filter may name. Past either end, the period before (or the hour after) the
# chosen one leaves Python's dates (year 1 to 9999): an OverflowError, a 500.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)


def _today() -> date:
    return datetime.now(UTC).date()


class _IdField(forms.Field):
    """An object id (``core.ids.parse_id``); another owner's id is valid here and simply
    matches nothing in the owner-scoped selectors."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, **kwargs)

    def to_python(self, value: Any) -> int | None:
        if value in self.empty_values:
            return None
        parsed = parse_id(str(value).strip())
        if parsed is None:
            raise forms.ValidationError("Not a valid id.")
        return parsed


class _DayField(forms.DateField):
    """A UTC day from ``FIRST_DAY`` to ``LAST_DAY``."""

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value is not None and not FIRST_DAY <= value <= LAST_DAY:
            raise forms.ValidationError(
                f"Enter a date from {FIRST_DAY:%Y-%m-%d} to {LAST_DAY:%Y-%m-%d}."
            )


def _date_field(label: str) -> forms.DateField:
    return _DayField(
        required=False,
        input_formats=[DATE_FORMAT],
        label=label,
        widget=forms.DateInput(attrs={"type": "date"}, format=DATE_FORMAT),
        error_messages={"invalid": "Enter a date as YYYY-MM-DD."},
    )


class UsageFilterForm(forms.Form):
    """Query parameters ``start``/``end`` (UTC days, inclusive; default: this month so
    far; ``end`` alone: from the first of its month), ``granularity`` (``day`` or
    ``hour``), ``project_id``, ``key_id``, ``provider`` and ``model``. Bind it to
    ``request.GET`` (or ``query_params``) even when empty."""

    start = _date_field("From")
    end = _date_field("To")
    granularity = forms.ChoiceField(
        required=False,
        choices=Granularity.choices,
        error_messages={"invalid_choice": "Choose day or hour."},
    )
    project_id = _IdField(label="Project")
    key_id = _IdField(label="Key")
    provider = forms.CharField(required=False, max_length=32)
    model = forms.CharField(required=False, max_length=200)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        today = _today()
        data["end"] = data.get("end") or today
        data["start"] = data.get("start") or data["end"].replace(day=1)
        data["granularity"] = data.get("granularity") or Granularity.DAY
        if self.errors:
            return data
        if data["end"] < data["start"]:
            self.add_error("end", "Must not be before start.")
        elif (data["end"] - data["start"]).days + 1 > MAX_DAYS[Granularity(data["granularity"])]:
            limit = MAX_DAYS[Granularity(data["granularity"])]
            self.add_error("end", f"Choose a period of at most {limit} days.")
        return data

    def summary_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``usage_summary`` (besides ``owner``); call after
        ``is_valid()``."""
        data = self.cleaned_data
        return {
            "start": data["start"],
            "end": data["end"],
            "granularity": data["granularity"],
            "project_id": data["project_id"],
            "key_id": data["key_id"],
            "provider": data["provider"] or None,
            "model": data["model"] or None,
        }

    def error_fields(self) -> dict[str, list[str]]:
        """The errors as the API's ``fields`` (plain messages, never the input back)."""
        return {name: [str(e) for e in errors] for name, errors in self.errors.items()}


class BudgetForm(forms.Form):
    """The Usage page's "set a budget" form: one of the owner's projects or keys, and
    dollars per month. Choices are ``project:<id>`` and ``key:<id>``; the view looks the
    object up again through the owner-scoped selectors."""

    target = forms.ChoiceField(
        label="Budget for",
        # Django's default repeats the rejected value.
        error_messages={
            "required": "Choose a project or a key.",
            "invalid_choice": "Choose one of your projects or keys.",
        },
    )
    monthly_limit = forms.DecimalField(
        label="Monthly budget (USD)",
        min_value=Decimal("0.01"),
        max_value=Decimal(1_000_000_000),
        max_digits=12,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
    )

    def __init__(
        self,
        *args: Any,
        projects: Iterable[Project],
        keys: Iterable[ApiKey],
        **kwargs: Any,
    ) -> None:
        """``projects`` and ``keys``: the owner's (from the keys selectors), the only
        choices."""
        super().__init__(*args, **kwargs)
        project_choices = [(f"project:{p.pk}", p.name) for p in projects]
        key_choices = [(f"key:{k.pk}", f"{k.name} ({k.masked_key})") for k in keys]
        choices: list[Any] = [("", "Choose a project or key")]
        if project_choices:
            choices.append(("Projects", project_choices))
        if key_choices:
            choices.append(("Keys", key_choices))
        target = self.fields["target"]
        assert isinstance(target, forms.ChoiceField)
        target.choices = choices

    def scope(self) -> tuple[str, int]:
        """``("project" | "key", id)``; call after ``is_valid()``."""
        kind, _, pk = self.cleaned_data["target"].partition(":")
        return kind, int(pk)

    def limit_micros(self) -> int:
        return int(self.cleaned_data["monthly_limit"] * 1_000_000)
