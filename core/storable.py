"""Text as PostgreSQL can store it: a text or JSON column refuses a NUL and a lone
surrogate (both come through JSON's ``\\u0000`` and ``\\ud800``). What a model or a tool
sent is kept, those characters made U+FFFD."""

from __future__ import annotations

from typing import Any

REPLACEMENT = "\ufffd"


def storable_text(value: str) -> str:
    if "\x00" in value:
        value = value.replace("\x00", REPLACEMENT)
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def storable_json(value: Any) -> Any:
    """``value`` (as ``json.loads`` gives it) with each string, key or value, storable."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, list):
        return [storable_json(item) for item in value]
    if isinstance(value, dict):
        return {storable_text(key): storable_json(item) for key, item in value.items()}
    return value
