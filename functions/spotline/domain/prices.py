"""On-demand SageMaker training prices, USD per instance-hour: the base of every cost *estimate*.

These are list prices of SageMaker Training in us-east-1 (Linux, on-demand) and are labelled an
estimate wherever they are used: regions, savings plans and price changes move the real bill.
A deployment overrides or extends them with ``SPOTLINE_PRICES`` (a JSON object of the same
shape). Managed Spot's ``BillableTimeInSeconds`` is already scaled down by the Spot discount, so
``billable seconds x on-demand price`` estimates what a Spot attempt cost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

PRICE_SOURCE = "SageMaker Training on-demand list prices, us-east-1 (estimate)"

ON_DEMAND_USD_PER_HOUR: Mapping[str, float] = {
    "ml.m5.large": 0.115,
    "ml.m5.xlarge": 0.23,
    "ml.m5.2xlarge": 0.461,
    "ml.c5.xlarge": 0.204,
    "ml.c5.2xlarge": 0.408,
    "ml.p2.xlarge": 1.125,
    "ml.p3.2xlarge": 3.825,
    "ml.p3.8xlarge": 14.688,
    "ml.p3.16xlarge": 28.152,
    "ml.g4dn.xlarge": 0.736,
    "ml.g4dn.2xlarge": 0.94,
    "ml.g4dn.4xlarge": 1.505,
    "ml.g4dn.8xlarge": 2.72,
    "ml.g4dn.12xlarge": 4.89,
    "ml.g4dn.16xlarge": 5.44,
    "ml.g5.xlarge": 1.408,
    "ml.g5.2xlarge": 1.515,
    "ml.g5.4xlarge": 2.03,
    "ml.g5.8xlarge": 3.06,
    "ml.g5.12xlarge": 7.09,
    "ml.g5.16xlarge": 4.61,
    "ml.g5.24xlarge": 10.18,
    "ml.g5.48xlarge": 20.36,
}


class PriceTableError(ValueError):
    """``SPOTLINE_PRICES`` is not a JSON object of positive numbers."""


def price_table(overrides_json: str | None = None) -> dict[str, float]:
    """The built-in table with the deployment's overrides merged over it."""
    table = dict(ON_DEMAND_USD_PER_HOUR)
    if not overrides_json:
        return table
    try:
        overrides = json.loads(overrides_json)
    except json.JSONDecodeError as e:
        raise PriceTableError(f"SPOTLINE_PRICES is not JSON: {e}") from e
    if not isinstance(overrides, dict):
        raise PriceTableError("SPOTLINE_PRICES must be a JSON object: instance type -> USD per hour")
    for name, value in overrides.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise PriceTableError(f"SPOTLINE_PRICES[{name!r}] must be a positive number, not {value!r}")
        table[str(name)] = float(value)
    return table
