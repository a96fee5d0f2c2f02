"""Cost and savings estimates over a run's attempts, and the price table's overrides."""

from __future__ import annotations

import pytest

from spotline.prices import ON_DEMAND_USD_PER_HOUR, PriceTableError, price_table
from spotline.savings import run_savings


def test_savings_add_up_over_attempts() -> None:
    attempts = [
        {
            "attempt": 1,
            "instance_type": "ml.g4dn.xlarge",
            "spot": True,
            "training_s": 3600,
            "billable_s": 1080,
        },
        {"attempt": 2, "instance_type": "ml.g4dn.xlarge", "spot": True},  # never ran
        {"attempt": 3, "instance_type": "ml.g5.xlarge", "spot": True, "training_s": 1800, "billable_s": 540},
    ]
    s = run_savings(attempts, price_table(), instance_count=2)
    assert (s.training_s, s.billable_s) == (5400, 1620)
    cost = 2 * (1080 * 0.736 + 540 * 1.408) / 3600
    on_demand = 2 * (3600 * 0.736 + 1800 * 1.408) / 3600
    assert s.estimated_cost_usd == pytest.approx(cost, abs=1e-3)
    assert s.on_demand_usd == pytest.approx(on_demand, abs=1e-3)
    assert s.savings_usd == pytest.approx(on_demand - cost, abs=1e-3)
    assert s.savings_pct == pytest.approx(70.0, abs=0.1)
    assert s.estimate is True and "estimate" in s.price_source
    assert s.to_dict()["attempts"][1]["estimated_cost_usd"] == 0.0


def test_an_unpriced_type_is_named_not_guessed() -> None:
    s = run_savings([{"attempt": 1, "instance_type": "ml.x9.huge", "training_s": 60, "billable_s": 20}], {})
    assert s.unpriced_types == ("ml.x9.huge",)
    assert s.estimated_cost_usd == 0.0


def test_price_overrides() -> None:
    table = price_table('{"ml.g4dn.xlarge": 0.5, "ml.trn1.2xlarge": 1.5}')
    assert table["ml.g4dn.xlarge"] == 0.5
    assert table["ml.trn1.2xlarge"] == 1.5
    assert table["ml.g5.xlarge"] == ON_DEMAND_USD_PER_HOUR["ml.g5.xlarge"]


@pytest.mark.parametrize("bad", ["not json", "[1]", '{"ml.g4dn.xlarge": -1}', '{"ml.g4dn.xlarge": true}'])
def test_bad_price_overrides_fail_with_the_variable_name(bad: str) -> None:
    with pytest.raises(PriceTableError, match="SPOTLINE_PRICES"):
        price_table(bad)
