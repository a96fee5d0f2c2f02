"""The local tuner's strategies: random and grid as SageMaker documents them, TPE standing in for
Bayesian, and the median rule of early stopping."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spotline_local.sagemaker.search import (
    MEDIAN_RULE_MIN_TRIALS,
    GridSearch,
    OptunaSearch,
    Param,
    RandomSearch,
    median_rule_stops,
    space,
)

RANGES = {
    "ContinuousParameterRanges": [
        {"Name": "solver.base_lr", "MinValue": "0.0003", "MaxValue": "0.01", "ScalingType": "Logarithmic"},
        {
            "Name": "solver.momentum",
            "MinValue": "0.5",
            "MaxValue": "0.999",
            "ScalingType": "ReverseLogarithmic",
        },
    ],
    "IntegerParameterRanges": [
        {"Name": "model.width", "MinValue": "16", "MaxValue": "48", "ScalingType": "Auto"}
    ],
    "CategoricalParameterRanges": [{"Name": "solver.batch_size", "Values": ["16", "32", "64"]}],
}


def _in_range(params: list[Param], proposal: dict[str, str]) -> bool:
    for p in params:
        text = proposal[p.name]
        if p.kind == "Categorical":
            assert text in p.values
        elif p.kind == "Integer":
            assert text == str(int(text)) and p.low <= int(text) <= p.high
        else:
            assert p.low <= float(text) <= p.high
    return True


@given(seed=st.integers(min_value=0, max_value=2**31 - 1))
@settings(max_examples=50, deadline=None)
def test_random_search_stays_in_every_range_and_repeats_itself_for_a_seed(seed: int) -> None:
    params = space(RANGES)
    first, again = RandomSearch(params, seed), RandomSearch(params, seed)
    for _ in range(5):
        a, b = first.ask(), again.ask()
        assert a is not None and a == b
        assert _in_range(params, a[1])


def test_logarithmic_scaling_searches_each_decade_alike() -> None:
    (lr,) = [p for p in space(RANGES) if p.name == "solver.base_lr"]
    search = RandomSearch([lr], 5)
    values = [float(search.ask()[1][lr.name]) for _ in range(2000)]  # type: ignore[index]
    below = sum(v < math.sqrt(0.0003 * 0.01) for v in values)  # the geometric middle
    assert 0.45 < below / len(values) < 0.55  # a linear search would put ~16% there


def test_grid_search_proposes_every_combination_once_then_nothing() -> None:
    params = [Param("a", "Categorical", values=("1", "2")), Param("b", "Categorical", values=("x", "y", "z"))]
    grid = GridSearch(params)
    proposals = [grid.ask() for _ in range(6)]
    assert grid.ask() is None
    assert sorted((p[1]["a"], p[1]["b"]) for p in proposals if p) == [
        (a, b) for a in ("1", "2") for b in ("x", "y", "z")
    ]


def test_tpe_proposes_valid_trials_and_learns_from_them() -> None:
    params = space(RANGES)
    search = OptunaSearch(params, 3, maximize=False, hyperband=False, budget=12)
    for _ in range(12):
        proposal = search.ask()
        assert proposal is not None and _in_range(params, proposal[1])
        ticket, hps = proposal
        search.tell(ticket, abs(math.log10(float(hps["solver.base_lr"])) + 2.5))
    assert len(search.study.trials) == 12 and search.study.best_value < 0.5


def test_a_trial_that_reported_nothing_is_told_as_failed() -> None:
    search = OptunaSearch(space(RANGES), 3, maximize=True, hyperband=False, budget=6)
    ticket, _ = search.ask()  # type: ignore[misc]
    search.tell(ticket, float("nan"))
    assert search.study.trials[0].state.name == "FAIL"


def test_median_rule_stops_a_trial_worse_than_the_median_of_earlier_running_averages() -> None:
    earlier = [[0.2, 0.4, 0.6], [0.1, 0.3, 0.5], [0.3, 0.5, 0.7]]  # running averages at report 2: .3 .2 .4
    assert median_rule_stops([0.1, 0.25], earlier, maximize=True)  # 0.25 < median 0.3
    assert not median_rule_stops([0.1, 0.35], earlier, maximize=True)
    assert not median_rule_stops([0.1, 0.25], earlier, maximize=False)  # lower is better: 0.25 < 0.3
    assert median_rule_stops([0.9, 0.35], earlier, maximize=False)


def test_median_rule_needs_enough_earlier_trials_that_reached_the_report() -> None:
    earlier = [[0.5, 0.9]] * (MEDIAN_RULE_MIN_TRIALS - 1) + [[0.5]]
    assert not median_rule_stops([0.0, 0.0], earlier, maximize=True)
    assert median_rule_stops([0.0, 0.0], [[0.5, 0.9]] * MEDIAN_RULE_MIN_TRIALS, maximize=True)


@pytest.mark.parametrize(
    ("current", "stops"), [([], False), ([float("inf")], False), ([1e300, -1e300], True), ([1e-300], False)]
)
def test_median_rule_on_odd_values(current: list[float], stops: bool) -> None:
    assert median_rule_stops(current, [[1e-300, 2.0]] * 4, maximize=True) is stops
