"""Cost and savings estimates over a run's attempts, and the price table's overrides."""

from __future__ import annotations

import pytest

from spotline.domain.prices import ON_DEMAND_USD_PER_HOUR, PriceTableError, price_table
from spotline.domain.savings import run_savings
from spotline.domain.states import AttemptStatus
from spotline.ledger.records import Attempt


def attempt(n: int, instance_type: str, training_s: int = 0, billable_s: int = 0) -> Attempt:
    return Attempt(
        run_id="r",
        attempt=n,
        job_name=f"spotline-r-a{n:02d}",
        instance_type=instance_type,
        spot=True,
        status=AttemptStatus.COMPLETED,
        training_s=training_s,
        billable_s=billable_s,
    )


def test_savings_add_up_over_attempts() -> None:
    attempts = [
        attempt(1, "ml.g4dn.xlarge", 3600, 1080),
        attempt(2, "ml.g4dn.xlarge"),  # never ran
        attempt(3, "ml.g5.xlarge", 1800, 540),
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
    s = run_savings([attempt(1, "ml.x9.huge", 60, 20)], {})
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
