"""How the Usage page writes amounts: ``{{ micros|dollars }}`` → ``$1,234.56``."""

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma

register = template.Library()


@register.filter
def dollars(micros: int | None) -> str:
    """Micro-dollars as dollars and cents; an amount under a cent keeps four decimals
    (``$0.0042``), so a small but real spend never reads ``$0.00``."""
    value = (micros or 0) / 1_000_000
    if 0 < abs(value) < 0.01:
        return f"${value:.4f}"
    whole, cents = f"{value:.2f}".split(".")
    return f"${intcomma(int(whole))}.{cents}"
