"""Dollars from integer micro-dollars, exact: a usage charge of 1,234 micros is ``$0.001234``,
not a rounded ``$0.00``.

    {% load money %}
    {{ balance_micros|usd }}                → $26.00
    {{ entry.amount_micros|usd_signed }}    → +$25.00, and a debit with a real minus sign
"""

from django import template

from billing.selectors import MICROS_PER_CENT, usd_amount

register = template.Library()
MINUS = "\N{MINUS SIGN}"  # the typographic minus, as wide as the plus


def dollars(micros: int) -> str:
    """``$12.50``; a debit with a minus sign: the selectors' ``usd_amount`` with a dollar
    mark."""
    micros = int(micros)
    return f"{MINUS if micros < 0 else ''}${usd_amount(abs(micros))}"


@register.filter
def usd(micros: int) -> str:
    return dollars(micros)


@register.filter
def usd_signed(micros: int) -> str:
    """An amount that moved the balance: credits ``+``, debits a minus."""
    text = dollars(micros)
    return text if int(micros) < 0 else f"+{text}"


@register.filter
def usd_cents(micros: int) -> str:
    """Whole cents, cut toward zero: a headline figure never shows more than is there
    (integer arithmetic: a float would misround large balances)."""
    micros = int(micros)
    cut = abs(micros) // MICROS_PER_CENT * MICROS_PER_CENT
    return dollars(-cut if micros < 0 else cut)
