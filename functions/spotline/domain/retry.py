"""The retry ladder: which rung the next attempt runs on, how long it waits, and the caps that stop it.

* **Rungs.** The run's instance types in order, on Spot when the run is; then, when the config
  allows it, one on-demand rung (the first-choice type) as the last resort. A ``CapacityError``
  moves one rung down at once (SageMaker itself says to try another type). A Spot interruption
  or a max-wait timeout retries the same rung once — often a passing dip of one pool, and the
  checkpoint was written on that type — and moves down if the same rung fails for capacity
  again. Past the last Spot rung the ladder starts again from the top (Spot capacity comes
  back), except that an on-demand last rung is kept.
* **Backoff.** ``retry_backoff`` doubled per relaunch, capped at six hours, with "equal jitter"
  (half fixed, half random) drawn from the run id and attempt — so a redelivered event computes
  the same delay. A quota failure waits longer (at least 15 minutes, doubling) and does not count
  against ``max_attempts``; it has a cap of its own.
* **Caps.** ``max_attempts`` (attempts that are not quota failures), ``budget_usd`` (estimated
  spend so far), the quota cap, and the 99 attempts that job names can number.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from spotline.domain.attempts import AttemptFacts
from spotline.domain.classify import Action, Outcome
from spotline.domain.naming import MAX_ATTEMPT
from spotline.domain.policy import RunPolicy

MAX_BACKOFF_S = 6 * 3600
QUOTA_BACKOFF_S = 15 * 60
QUOTA_RETRY_LIMIT = 6  # 15 min, 30 min, 1 h, 2 h, 4 h, 6 h: about 14 hours for a quota to free up
RELAUNCH_ACTIONS = frozenset(
    {
        Action.RELAUNCH_NEXT_RUNG,
        Action.RELAUNCH_SAME_THEN_NEXT,
        Action.RELAUNCH_SAME_RUNG,
        Action.RELAUNCH_LATER,
        Action.RELAUNCH_IF_CONTINUING,
    }
)


class Cap(StrEnum):
    """Why the ladder stopped."""

    ATTEMPTS = "attempt cap"
    BUDGET = "budget cap"
    QUOTA = "quota retry cap"
    NAMES = "job-name attempt limit"
    NO_PROGRESS = "no-progress cap"  # relaunches that leave no newer checkpoint (domain/progress.py)


@dataclass(frozen=True)
class Rung:
    """Where one attempt runs: an instance type, on Spot or not."""

    instance_type: str
    spot: bool


@dataclass(frozen=True)
class Relaunch:
    attempt: int
    rung: Rung
    delay_s: int
    reason: str


@dataclass(frozen=True)
class CapReached:
    cap: Cap
    detail: str


def rungs(policy: RunPolicy) -> tuple[Rung, ...]:
    """Every rung of the run's ladder, first choice first."""
    ladder = [Rung(t, policy.spot) for t in policy.ladder]
    if policy.spot and policy.on_demand_fallback:
        ladder.append(Rung(policy.ladder[0], False))
    return tuple(ladder)


def rung_index(policy: RunPolicy, instance_type: str, spot: bool) -> int:
    """Where an attempt's (type, spot) sits on the ladder (0 if it is not on it)."""
    for i, rung in enumerate(rungs(policy)):
        if rung == Rung(instance_type, spot):
            return i
    return 0


def next_rung(policy: RunPolicy, current: int, action: Action) -> Rung:
    ladder = rungs(policy)
    if action != Action.RELAUNCH_NEXT_RUNG:
        return ladder[min(current, len(ladder) - 1)]
    if current + 1 < len(ladder):
        return ladder[current + 1]
    last = ladder[-1]
    return last if not last.spot else ladder[0]


def _capacity_failed_before(attempts: Sequence[AttemptFacts]) -> bool:
    """Whether the attempt before the last ran on the same rung and also found no Spot capacity."""
    if len(attempts) < 2:
        return False
    last, before = attempts[-1], attempts[-2]
    same_rung = (before.instance_type, before.spot) == (last.instance_type, last.spot)
    return same_rung and before.outcome == Outcome.SPOT_UNAVAILABLE


def _unit_jitter(run_id: str, attempt: int) -> float:
    digest = hashlib.sha256(f"{run_id}#{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def backoff_s(base_s: int, retries_before: int, *, run_id: str, attempt: int, floor_s: int = 0) -> int:
    """``max(base, floor) * 2**retries_before`` capped at six hours, half of it jittered."""
    full = int(min(MAX_BACKOFF_S, max(base_s, floor_s) * 2 ** max(0, retries_before)))
    half = full // 2
    return half + int((full - half) * _unit_jitter(run_id, attempt))


def quota_backoff_s(policy: RunPolicy, quota_hits_before: int, *, run_id: str, attempt: int) -> int:
    return backoff_s(
        policy.retry_backoff_s, quota_hits_before, run_id=run_id, attempt=attempt, floor_s=QUOTA_BACKOFF_S
    )


def plan_relaunch(
    policy: RunPolicy,
    action: Action,
    *,
    run_id: str,
    attempts: Sequence[AttemptFacts],
    spent_usd: float,
) -> Relaunch | CapReached:
    """The next attempt after the last one in ``attempts`` ended with ``action``, or the cap that stops it.

    ``attempts`` are the run's attempts so far, with ``outcome`` recorded for every ended one.
    """
    if action not in RELAUNCH_ACTIONS:
        raise ValueError(f"{action} does not relaunch")
    last = attempts[-1]
    current = last.attempt
    quota_hits = sum(1 for a in attempts if a.outcome == Outcome.QUOTA)
    charged = sum(1 for a in attempts if a.outcome != Outcome.QUOTA)
    if current + 1 > MAX_ATTEMPT:
        return CapReached(Cap.NAMES, f"attempt {current} is the last a job name can number")
    if action == Action.RELAUNCH_LATER:
        if quota_hits > QUOTA_RETRY_LIMIT:
            return CapReached(
                Cap.QUOTA, f"{quota_hits} attempts hit an account quota (limit {QUOTA_RETRY_LIMIT})"
            )
    elif charged >= policy.max_attempts:
        return CapReached(Cap.ATTEMPTS, f"{charged} of max_attempts={policy.max_attempts} attempts used")
    if policy.budget_usd is not None and spent_usd >= policy.budget_usd:
        return CapReached(
            Cap.BUDGET, f"estimated spend ${spent_usd:.2f} reached budget_usd=${policy.budget_usd:.2f}"
        )
    position = rung_index(policy, last.instance_type, last.spot)
    if action == Action.RELAUNCH_SAME_THEN_NEXT:
        action = Action.RELAUNCH_NEXT_RUNG if _capacity_failed_before(attempts) else Action.RELAUNCH_SAME_RUNG
    rung = next_rung(policy, position, action)
    if action == Action.RELAUNCH_LATER:
        delay = quota_backoff_s(policy, quota_hits - 1, run_id=run_id, attempt=current + 1)
    else:
        delay = backoff_s(policy.retry_backoff_s, charged - 1, run_id=run_id, attempt=current + 1)
    return Relaunch(attempt=current + 1, rung=rung, delay_s=delay, reason=str(action))
