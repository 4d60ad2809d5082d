"""Formatting for catalog pages: prices per million tokens, token counts."""

from decimal import Decimal
from typing import Any

from django import template

from models_catalog import payloads

register = template.Library()
MILLION = Decimal(1_000_000)


@register.filter
def per_million(value: Any) -> str:
    """A per-token USD price (Decimal or decimal string) as dollars per million tokens."""
    if value is None or value == "":
        return "—"
    price = value if isinstance(value, Decimal) else payloads.price(value, where="template")
    if price is None:
        return "varies"
    if price == 0:
        return "Free"
    amount = price * MILLION
    # Up to 4 decimals (e.g. $0.0375, $1.125: real prices, not to be rounded to $1.12)
    # but at least 2 ($0.70, $10.00).
    whole, _, decimals = f"{amount:,.4f}".partition(".")
    return f"${whole}.{decimals.rstrip('0').ljust(2, '0')}"


@register.filter
def tokens(value: Any) -> str:
    """200000 -> 200K, 1048576 -> 1M."""
    if not value:
        return "—"
    number = int(value)
    if number >= 1_000_000:
        return f"{number / 1_000_000:.1f}".removesuffix(".0") + "M"
    if number >= 1_000:
        return f"{number / 1_000:.0f}K"
    return str(number)


@register.filter
def label(value: str) -> str:
    return str(value).replace("_", " ")
