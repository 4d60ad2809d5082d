"""Template filters for URLs that come from outside services."""

from urllib.parse import urlsplit

from django import template

register = template.Library()


@register.filter
def https_url(value: object) -> str:
    """The URL if it is an absolute https URL, else "" (a provider could send ``javascript:``)."""
    url = str(value or "").strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if parts.scheme.lower() != "https" or not parts.hostname:
        return ""
    return url
