"""Which numbers spotline can keep: finite, and within what DynamoDB's numbers hold.

DynamoDB stores a number as a decimal of at most 38 significant digits whose magnitude is 0 or
between 1e-130 and 1e126; NaN and infinity cannot be stored at all (and NaN passes every ``<``
and ``>`` bound). The config schema refuses such a value by its key before anything is launched,
and the ledger refuses it before every write, with this one rule.
"""

from __future__ import annotations

import math
from decimal import Decimal

SMALLEST = Decimal("1e-130")
LARGEST = Decimal("1e126")
MAX_DIGITS = 38
STORABLE = "a finite number, 0 or between 1e-130 and 1e126 in size, with at most 38 significant digits"


def number_problem(value: int | float | Decimal) -> str | None:
    """Why ``value`` cannot be kept as it is (None if it can)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "is not a finite number"
    if isinstance(value, Decimal) and not value.is_finite():
        return "is not a finite number"
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if number and not SMALLEST <= abs(number) < LARGEST:
        return "is outside what DynamoDB stores (1e-130 .. 1e126)"
    if len(number.normalize().as_tuple().digits) > MAX_DIGITS:
        return f"has more than {MAX_DIGITS} significant digits"
    return None
