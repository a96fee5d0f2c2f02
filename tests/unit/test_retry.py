"""The ladder, the backoff and the caps."""

from __future__ import annotations

from typing import Any

import pytest

from spotline.domain.classify import Action, Outcome
from spotline.domain.policy import RunPolicy
from spotline.domain.requests import Rung
from spotline.domain.retry import (
    MAX_BACKOFF_S,
    QUOTA_BACKOFF_S,
    Cap,
    CapReached,
    Relaunch,
    backoff_s,
    plan_relaunch,
    rungs,
)
from spotline.domain.states import AttemptStatus
from spotline.ledger.records import Attempt


def policy(**overrides: Any) -> RunPolicy:
    base: dict[str, Any] = {
        "ladder": ("ml.g4dn.xlarge", "ml.g5.xlarge"),
        "spot": True,
        "max_attempts": 5,
        "on_demand_fallback": False,
        "budget_usd": None,
        "continue_after_max_runtime": False,
        "retry_backoff_s": 60,
        "max_wait_s": 7200,
        "instance_count": 1,
    }
    return RunPolicy(**{**base, **overrides})


def attempt(
    n: int,
    instance_type: str = "ml.g4dn.xlarge",
    outcome: Outcome = Outcome.SPOT_UNAVAILABLE,
    spot: bool = True,
) -> Attempt:
    return Attempt(
        run_id="r",
        attempt=n,
        job_name=f"spotline-r-a{n:02d}",
        instance_type=instance_type,
        spot=spot,
        status=AttemptStatus.INTERRUPTED,
        outcome=outcome.value,
    )


def plan(p: RunPolicy, action: Action, attempts: list[Attempt], spent: float = 0.0) -> Relaunch | CapReached:
    return plan_relaunch(p, action, run_id="rail-0123456789ab", attempts=attempts, spent_usd=spent)


def test_rungs_end_with_on_demand_when_allowed() -> None:
    assert rungs(policy()) == (Rung("ml.g4dn.xlarge", True), Rung("ml.g5.xlarge", True))
    assert rungs(policy(on_demand_fallback=True))[-1] == Rung("ml.g4dn.xlarge", False)
    assert rungs(policy(spot=False)) == (Rung("ml.g4dn.xlarge", False), Rung("ml.g5.xlarge", False))


def test_capacity_error_moves_down_and_wraps_past_the_last_spot_rung() -> None:
    step = plan(policy(), Action.RELAUNCH_NEXT_RUNG, [attempt(1)])
    assert isinstance(step, Relaunch) and (step.attempt, step.rung) == (2, Rung("ml.g5.xlarge", True))
    step = plan(policy(), Action.RELAUNCH_NEXT_RUNG, [attempt(1), attempt(2, "ml.g5.xlarge")])
    assert isinstance(step, Relaunch) and step.rung == Rung("ml.g4dn.xlarge", True)


def test_on_demand_last_rung_is_kept() -> None:
    p = policy(on_demand_fallback=True)
    history = [attempt(1), attempt(2, "ml.g5.xlarge"), attempt(3, spot=False)]
    step = plan(p, Action.RELAUNCH_NEXT_RUNG, history)
    assert isinstance(step, Relaunch) and step.rung == Rung("ml.g4dn.xlarge", False)


def test_an_interruption_retries_the_same_rung_once_then_moves_down() -> None:
    step = plan(policy(), Action.RELAUNCH_SAME_THEN_NEXT, [attempt(1)])
    assert isinstance(step, Relaunch) and step.rung == Rung("ml.g4dn.xlarge", True)
    step = plan(policy(), Action.RELAUNCH_SAME_THEN_NEXT, [attempt(1), attempt(2)])
    assert isinstance(step, Relaunch) and step.rung == Rung("ml.g5.xlarge", True)


def test_attempt_cap() -> None:
    result = plan(policy(max_attempts=2), Action.RELAUNCH_NEXT_RUNG, [attempt(1), attempt(2)])
    assert isinstance(result, CapReached) and result.cap == Cap.ATTEMPTS


def test_budget_cap() -> None:
    result = plan(policy(budget_usd=5.0), Action.RELAUNCH_SAME_RUNG, [attempt(1)], spent=5.01)
    assert isinstance(result, CapReached) and result.cap == Cap.BUDGET
    assert isinstance(
        plan(policy(budget_usd=5.0), Action.RELAUNCH_SAME_RUNG, [attempt(1)], spent=4.0), Relaunch
    )


def test_quota_failures_do_not_use_attempts_but_have_their_own_cap() -> None:
    quota = [attempt(i, outcome=Outcome.QUOTA) for i in range(1, 4)]
    step = plan(policy(max_attempts=1), Action.RELAUNCH_LATER, quota)
    assert isinstance(step, Relaunch) and step.delay_s >= QUOTA_BACKOFF_S
    many = [attempt(i, outcome=Outcome.QUOTA) for i in range(1, 9)]
    result = plan(policy(), Action.RELAUNCH_LATER, many)
    assert isinstance(result, CapReached) and result.cap == Cap.QUOTA


def test_job_names_cannot_number_past_99() -> None:
    result = plan(policy(max_attempts=20), Action.RELAUNCH_LATER, [attempt(99, outcome=Outcome.QUOTA)])
    assert isinstance(result, CapReached) and result.cap == Cap.NAMES


@pytest.mark.parametrize("retries", range(12))
def test_backoff_is_jittered_doubling_and_capped(retries: int) -> None:
    full = min(MAX_BACKOFF_S, 60 * 2**retries)
    delay = backoff_s(60, retries, run_id="r", attempt=retries + 2)
    assert full // 2 <= delay <= full
    assert delay == backoff_s(60, retries, run_id="r", attempt=retries + 2)  # redelivery: same delay


def test_jitter_spreads_runs() -> None:
    delays = {backoff_s(600, 0, run_id=f"run-{i}", attempt=2) for i in range(20)}
    assert len(delays) > 10
