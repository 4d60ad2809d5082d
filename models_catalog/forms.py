"""The catalog filter form, shared by the Models page and the API's query parameters."""

from decimal import Decimal
from typing import Any

from django import forms
from django.utils.datastructures import MultiValueDict

from models_catalog.filters import SORTS, CatalogFilters
from models_catalog.models import DataPolicy
from models_catalog.payloads import CAPABILITIES


class ListInput(forms.SelectMultiple):
    """Accepts ``?x=a&x=b`` and ``?x=a,b``."""

    def value_from_datadict(self, data: Any, files: Any, name: str) -> list[str]:
        raw = data.getlist(name) if isinstance(data, MultiValueDict) else [data.get(name) or ""]
        return [part.strip() for value in raw for part in str(value).split(",") if part.strip()]


class ListField(forms.Field):
    widget = ListInput

    def __init__(self, *, upper: bool = False, choices: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)
        self.upper = upper
        self.allowed = dict(choices) if choices else None

    def to_python(self, value: Any) -> tuple[str, ...]:
        items = [str(v).upper() if self.upper else str(v).lower() for v in value or []]
        if self.allowed is not None:
            unknown = [item for item in items if item not in self.allowed]
            if unknown:
                # The choices, not the rejected value: errors never repeat raw input.
                raise forms.ValidationError(f"Choose from: {', '.join(self.allowed)}.")
        return tuple(dict.fromkeys(items))


class CatalogFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=100, label="Search")
    provider = ListField(label="Provider")
    location = ListField(upper=True, label="Location", help_text="Country code")
    data_policy = ListField(choices=DataPolicy.choices, label="Data policy")
    max_prompt_price = forms.DecimalField(
        required=False, min_value=Decimal(0), max_digits=12, decimal_places=6,
        label="Max input $/M",
    )  # fmt: skip
    max_completion_price = forms.DecimalField(
        required=False, min_value=Decimal(0), max_digits=12, decimal_places=6,
        label="Max output $/M",
    )  # fmt: skip
    min_context = forms.IntegerField(required=False, min_value=0, label="Min context")
    input_modality = ListField(label="Input")
    output_modality = ListField(label="Output")
    supports = ListField(choices=CAPABILITIES.items(), label="Supports")
    sort = forms.ChoiceField(
        required=False,
        choices=list(SORTS.items()),
        label="Sort",
        error_messages={"invalid_choice": f"Choose one of: {', '.join(SORTS)}."},
    )

    def filters(self) -> CatalogFilters:
        """The validated filters (call after ``is_valid()``)."""
        data = self.cleaned_data
        return CatalogFilters(
            providers=data["provider"],
            locations=data["location"],
            data_policies=data["data_policy"],
            max_prompt_price=data["max_prompt_price"],
            max_completion_price=data["max_completion_price"],
            min_context=data["min_context"],
            input_modalities=data["input_modality"],
            output_modalities=data["output_modality"],
            supports=data["supports"],
            q=data["q"].strip(),
            sort=data["sort"] or "featured",
        )

    def first_value(self, name: str) -> str:
        """The first value of a list filter, for the page's single-choice selects."""
        value = self.cleaned_data.get(name) if hasattr(self, "cleaned_data") else None
        return value[0] if value else ""
