"""What a run cost over all its attempts, and what Spot saved against on-demand: an estimate.

Per attempt, SageMaker reports ``TrainingTimeInSeconds`` (wall-clock time on instances) and
``BillableTimeInSeconds`` (for Managed Spot, already reduced by the Spot discount; AWS's own
savings formula is ``1 - billable / training``). So, with ``p`` the on-demand price of the
attempt's instance type and ``n`` its instance count:

* estimated cost       = billable seconds x n x p
* on-demand equivalent = training seconds x n x p   (the same compute, uninterrupted, on-demand)

summed over the attempts. The on-demand figure counts work a Spot interruption threw away since
the last checkpoint, so it is an upper bound; both numbers are labelled estimates.

A run whose image does not resume from checkpoints (a ``job.image`` without ``checkpoints: true``)
restarts every relaunch from zero: the training of each attempt that did not complete is lost, and
:func:`lost_work` counts it (seconds and estimated cost).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from spotline.domain.attempts import AttemptFacts
from spotline.domain.classify import Outcome
from spotline.domain.plain import plain_fields
from spotline.domain.prices import PRICE_SOURCE


@dataclass(frozen=True)
class AttemptCost:
    attempt: int
    instance_type: str
    spot: bool
    training_s: int
    billable_s: int
    usd_per_hour: float | None
    estimated_cost_usd: float | None
    on_demand_usd: float | None


@dataclass(frozen=True)
class RunSavings:
    training_s: int
    billable_s: int
    estimated_cost_usd: float
    on_demand_usd: float
    savings_usd: float
    savings_pct: float
    unpriced_types: tuple[str, ...] = ()
    attempts: tuple[AttemptCost, ...] = field(default_factory=tuple)
    estimate: bool = True
    price_source: str = PRICE_SOURCE

    def to_dict(self) -> dict[str, Any]:
        return plain_fields(self)


def attempt_cost(attempt: AttemptFacts, prices: Mapping[str, float], instance_count: int) -> AttemptCost:
    """The cost estimate of one attempt (no seconds = the attempt never ran)."""
    training = attempt.training_s
    billable = attempt.billable_s
    instance_type = attempt.instance_type
    price = prices.get(instance_type)
    cost = on_demand = None
    if price is not None:
        cost = round(billable * instance_count * price / 3600, 4)
        on_demand = round(training * instance_count * price / 3600, 4)
    return AttemptCost(
        attempt.attempt, instance_type, attempt.spot, training, billable, price, cost, on_demand
    )


def run_savings(
    attempts: Iterable[AttemptFacts], prices: Mapping[str, float], instance_count: int = 1
) -> RunSavings:
    """Totals over every attempt of a run."""
    costs = tuple(attempt_cost(a, prices, instance_count) for a in attempts)
    cost = round(sum(c.estimated_cost_usd or 0.0 for c in costs), 4)
    on_demand = round(sum(c.on_demand_usd or 0.0 for c in costs), 4)
    unpriced = tuple(sorted({c.instance_type for c in costs if c.usd_per_hour is None and c.training_s}))
    return RunSavings(
        training_s=sum(c.training_s for c in costs),
        billable_s=sum(c.billable_s for c in costs),
        estimated_cost_usd=cost,
        on_demand_usd=on_demand,
        savings_usd=round(on_demand - cost, 4),
        savings_pct=round(100 * (1 - cost / on_demand), 1) if on_demand > 0 else 0.0,
        unpriced_types=unpriced,
        attempts=costs,
    )


@dataclass(frozen=True)
class LostWork:
    """Training of attempts a relaunch could not build on (the image does not resume): done again."""

    attempts: tuple[int, ...]
    training_s: int
    estimated_cost_usd: float

    def to_dict(self) -> dict[str, Any]:
        return plain_fields(self)


def lost_work(
    attempts: Iterable[AttemptFacts],
    prices: Mapping[str, float],
    instance_count: int = 1,
    *,
    resumes: bool,
) -> LostWork | None:
    """What the run's attempts that did not complete trained for nothing; None if the run resumes
    (then at most the work since each attempt's last checkpoint is lost, which only the image knows)."""
    if resumes:
        return None
    ended = [
        a
        for a in attempts
        if a.outcome is not None and a.outcome != Outcome.COMPLETED.value and a.training_s > 0
    ]
    costs = [attempt_cost(a, prices, instance_count) for a in ended]
    return LostWork(
        attempts=tuple(a.attempt for a in ended),
        training_s=sum(a.training_s for a in ended),
        estimated_cost_usd=round(sum(c.estimated_cost_usd or 0.0 for c in costs), 4),
    )


def spent_usd(
    attempts: Iterable[AttemptFacts], prices: Mapping[str, float], instance_count: int = 1
) -> float:
    """Estimated spend so far (what the budget cap compares against)."""
    return run_savings(attempts, prices, instance_count).estimated_cost_usd
