"""One way to show a moment on every page: how long ago (or until), with the exact UTC time
on hover and in the ``datetime`` attribute.

    {% load dates %}
    {% when key.last_used_at %}               → <time …>3 hours ago</time>, or "never"
    {% when session.last_refreshed_at empty="not yet" %}
    {{ bucket_start|utc }}                    → 30 Nov 2026, 08:00 UTC (a time axis, a table
                                                of hours: absolute, never relative)
"""

from datetime import UTC, datetime

from django import template
from django.utils import dateformat, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince, timeuntil

register = template.Library()

JUST_NOW = 60  # seconds either side of now that read as "just now"


def exact(value: datetime) -> str:
    """``30 Nov 2026, 08:28 UTC``: the absolute form every page uses."""
    return f"{dateformat.format(value.astimezone(UTC), 'j M Y, H:i')} UTC"


def relative(value: datetime, now: datetime) -> str:
    """``3 hours ago``, ``in 29 days`` or ``just now``, to the largest unit."""
    seconds = (value - now).total_seconds()
    if abs(seconds) < JUST_NOW:
        return "just now"
    if seconds < 0:
        return f"{timesince(value, now, depth=1)} ago"
    return f"in {timeuntil(value, now, depth=1)}"


@register.simple_tag
def when(value: datetime | None, empty: str = "never") -> SafeString:
    if value is None:
        return format_html('<span class="muted">{}</span>', empty)
    if timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        value.astimezone(UTC).isoformat(timespec="seconds"),
        exact(value),
        relative(value, timezone.now()),
    )


@register.filter
def utc(value: datetime | None) -> str:
    """The absolute form alone, for moments read side by side (an hourly series)."""
    if value is None:
        return ""
    if timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return exact(value)
