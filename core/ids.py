"""Object ids from user input (query strings, paths, JSON bodies).

An id is plain ASCII digits within the primary-key range, or it is not an id. ``str.isdigit()``
is not enough: it accepts superscript digits (which ``int()`` then refuses) and other
scripts' digits (which ``int()`` reads), and a value past the range overflows SQLite's
integer columns (a 500, not a 404).
"""

from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers

# BigAutoField (DEFAULT_AUTO_FIELD): SQLite's INTEGER and PostgreSQL's bigint.
MAX_ID = 2**63 - 1

_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_id(raw: object) -> int | None:
    """The id ``raw`` names (an int, or a string of ASCII digits), or None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str) and _DIGITS.fullmatch(raw):
        raw = int(raw)
    if isinstance(raw, int) and 1 <= raw <= MAX_ID:
        return raw
    return None


class IdField(serializers.IntegerField):
    """An id in a JSON body: an integer (or a string of ASCII digits) within range."""

    default_error_messages = {"invalid": "Not a valid id."}

    def __init__(self, **kwargs: Any) -> None:
        # The bounds only document the range in the schema; parse_id enforces it.
        super().__init__(min_value=1, max_value=MAX_ID, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        value = parse_id(data)
        if value is None:
            self.fail("invalid")
        return value
