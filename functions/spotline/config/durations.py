"""Human durations (``10h``, ``90m``, ``1h30m``, ``45s``, ``2d``) to and from seconds."""

from __future__ import annotations

import re

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+)\s*([dhms])")
_WHOLE = re.compile(r"(?:\s*\d+\s*[dhms])+\s*")


class DurationError(ValueError):
    """A duration that cannot be read; the message says what is expected."""


EXPECTED = "expected a positive duration such as 90m, 10h, 1h30m, 45s or 2d"


def parse_duration(value: object) -> int:
    """Seconds in ``value``: an int (seconds) or text like ``1h30m``. Zero and negatives are errors."""
    if isinstance(value, bool):
        raise DurationError(EXPECTED)
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and _WHOLE.fullmatch(value.lower()):
        seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(value.lower()))
    else:
        raise DurationError(EXPECTED)
    if seconds <= 0:
        raise DurationError(EXPECTED)
    return seconds


def format_duration(seconds: int) -> str:
    """The shortest human form of ``seconds``: 36000 -> '10h', 5400 -> '1h30m'."""
    if seconds <= 0:
        return f"{seconds}s"
    parts = []
    for unit, size in _UNITS.items():
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)
