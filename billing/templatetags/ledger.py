"""The ledger's links: a usage charge points at the assistant run that made the call.

{% load ledger %}
{% with run_id=entry.metered_call.call_id|assistant_run_id %}…{% endwith %}
"""

from django import template

from billing import selectors

register = template.Library()


@register.filter
def assistant_run_id(call_id: str | None) -> int | None:
    return selectors.assistant_run_id(call_id) if call_id else None
