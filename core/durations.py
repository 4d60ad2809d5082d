"""Parse human durations such as ``30m`` or ``7d`` (the seeds' env format)."""

import re
from datetime import timedelta

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")


def parse_duration(value: str | int | timedelta) -> timedelta:
    """Return a timedelta for ``90``/``90s``, ``30m``, ``12h``, ``7d`` or ``2w``.

    A bare number means seconds. Anything else raises ``ValueError`` naming the value.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int):
        return timedelta(seconds=value)
    match = _PATTERN.match(value)
    if not match:
        raise ValueError(
            f"invalid duration {value!r}: use a number with s, m, h, d or w (e.g. 30m)"
        )
    amount, unit = int(match.group(1)), match.group(2) or "s"
    return timedelta(**{_UNITS[unit]: amount})
