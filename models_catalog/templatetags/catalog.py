"""Formatting for catalog pages: prices per million tokens, token counts."""

from decimal import Decimal
from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from models_catalog import payloads
from models_catalog.models import DataPolicy

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
    """A capability as the filters name it ("structured_outputs": "Structured outputs")."""
    return payloads.CAPABILITIES.get(str(value), str(value).replace("_", " "))


@register.filter
def breakable_id(value: str) -> SafeString:
    """An OpenRouter id that may wrap after its slash ("openai/<wbr>gpt-4o"), so a narrow
    column breaks it there rather than in the middle of a word."""
    author, slash, rest = str(value).partition("/")
    return format_html("{}{}<wbr>{}", author, slash, rest) if slash else format_html("{}", value)


@register.filter
def data_policy(value: str) -> str:
    """A provider's data policy as its pill says it ("unknown" alone explains nothing)."""
    if value not in DataPolicy.values or value == DataPolicy.UNKNOWN:
        return "Data policy unknown"
    return str(DataPolicy(value).label)


@register.filter
def https_url(value: str | None) -> str:
    """A provider's URL from OpenRouter, only when it is https (it lands in an href)."""
    return value if isinstance(value, str) and value.startswith("https://") else ""
