"""``sentence_case``: allauth's headings, buttons and labels ("Sign Up", "Remember Me") written
the way Kay writes its own ("Sign up", "Remember me")."""

import re

from django import template
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

# Names that keep their capital wherever they stand.
PROPER_NOUNS = frozenset({"Kay", "Google", "Atlassian", "Jira", "Confluence", "Bitbucket"})
TAG = re.compile(r"(<[^>]*>)")
WORD = re.compile(r"&#?\w+;|[A-Za-z]+")  # an entity ("&lt;") is one token, left alone


@register.filter(is_safe=True)
def sentence_case(value: str) -> SafeString:
    """Lower-case each capitalised word after the first, except proper nouns. Words in capitals
    ("API") or mixed case stay, and so does any markup."""
    first = True

    def lower(match: re.Match[str]) -> str:
        nonlocal first
        word = match.group(0)
        if word.startswith("&"):
            return word
        keep = first or word in PROPER_NOUNS or not word[1:].islower() or not word[0].isupper()
        first = False
        return word if keep else word.lower()

    parts = TAG.split(str(conditional_escape(value)))
    for index in range(0, len(parts), 2):  # the text between tags
        parts[index] = WORD.sub(lower, parts[index])
    return mark_safe("".join(parts))  # noqa: S308 (escaped above; only words changed case)
