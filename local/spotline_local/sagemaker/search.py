"""How the local tuner chooses each trial's hyperparameters, and when it stops a trial early.

* ``Random`` and ``Grid`` are implemented as SageMaker documents them: independent random draws
  over each range on its scale ("Auto" searches linearly, as SageMaker does until it has reason
  to think otherwise), and every combination of the categorical values, in order;
* ``Bayesian``: optuna's TPE sampler stands in for SageMaker's own Bayesian optimisation (whose
  model is not published); it is told every trial's objective, warm-start parents' included;
* ``Hyperband``: optuna's HyperbandPruner over random draws stands in for SageMaker's Hyperband;
  it sees each report of the objective and stops the trials it would not promote;
* early stopping (``TrainingJobEarlyStoppingType: Auto``) follows the median rule of "Stop
  Training Jobs Early": after each report of the objective, a trial is stopped when its value is
  worse than the median, over earlier trials that reached the same report, of their running
  averages up to that report.

Every draw is seeded (``RandomSeed``, or a seed derived from the tuning job's name): the same
tuning job proposes the same trials.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import statistics
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # imported where used: the CLI runs without the local extra installed
    import optuna

LABELS = {
    "Bayesian": "optuna's TPESampler (stands in for SageMaker's Bayesian optimisation)",
    "Hyperband": "optuna's HyperbandPruner over random search (stands in for SageMaker's Hyperband)",
    "Random": "random search, as SageMaker documents it",
    "Grid": "grid search, as SageMaker documents it",
}
# SageMaker does not document how many earlier trials its median rule needs; fewer than this and
# the local tuner stops nothing.
MEDIAN_RULE_MIN_TRIALS = 3


@dataclass(frozen=True)
class Param:
    """One range of a tuning job's ``ParameterRanges``."""

    name: str
    kind: str  # Integer | Continuous | Categorical
    low: float = 0.0
    high: float = 0.0
    scale: str = "Auto"
    values: tuple[str, ...] = ()

    def text(self, value: Any) -> str:
        """The hyperparameter text a trial is given (SageMaker's values are text)."""
        if self.kind == "Integer":
            return str(int(value))
        if self.kind == "Continuous":
            return repr(float(value))
        return str(value)


def space(ranges: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[Param]:
    params = []
    for kind in ("Integer", "Continuous"):
        for item in ranges.get(f"{kind}ParameterRanges") or ():
            low, high = float(item["MinValue"]), float(item["MaxValue"])
            params.append(Param(item["Name"], kind, low, high, item.get("ScalingType", "Auto")))
    for item in ranges.get("CategoricalParameterRanges") or ():
        params.append(Param(item["Name"], "Categorical", values=tuple(str(v) for v in item["Values"])))
    return params


def seed_for(name: str, random_seed: int | None) -> int:
    if random_seed is not None:
        return int(random_seed)
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


class Search(Protocol):
    """A strategy: proposes hyperparameters, hears objectives and reports, may stop a trial."""

    def ask(self) -> tuple[int, dict[str, str]] | None:
        """``(ticket, hyperparameters)`` of the next trial, or None when it has nothing left."""

    def tell(self, ticket: int, objective: float | None) -> None: ...

    def report(self, ticket: int, step: int, value: float) -> bool:
        """A trial reported its objective for the ``step``-th time: True to stop it now."""


def draw(param: Param, rng: random.Random) -> Any:
    """One random value of ``param`` on its scale."""
    if param.kind == "Categorical":
        return rng.choice(param.values)
    low, high = param.low, param.high
    if param.scale == "Logarithmic":
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    elif param.scale == "ReverseLogarithmic":
        value = 1.0 - math.exp(rng.uniform(math.log(1.0 - high), math.log(1.0 - low)))
    else:
        value = rng.uniform(low, high)
    if param.kind == "Integer":
        return min(int(high), max(int(low), round(value)))
    return min(high, max(low, value))


class RandomSearch:
    def __init__(self, params: Sequence[Param], seed: int) -> None:
        self.params, self.rng, self.count = list(params), random.Random(seed), 0

    def ask(self) -> tuple[int, dict[str, str]] | None:
        self.count += 1
        return self.count, {p.name: p.text(draw(p, self.rng)) for p in self.params}

    def tell(self, ticket: int, objective: float | None) -> None:
        """Random search learns nothing from results."""

    def report(self, ticket: int, step: int, value: float) -> bool:
        return False


class GridSearch:
    def __init__(self, params: Sequence[Param]) -> None:
        self.names = [p.name for p in params]
        self.combos: Iterator[tuple[str, ...]] = itertools.product(*(p.values for p in params))
        self.count = 0

    def ask(self) -> tuple[int, dict[str, str]] | None:
        combo = next(self.combos, None)
        if combo is None:
            return None
        self.count += 1
        return self.count, dict(zip(self.names, combo, strict=True))

    def tell(self, ticket: int, objective: float | None) -> None:
        """The grid is fixed."""

    def report(self, ticket: int, step: int, value: float) -> bool:
        return False


def _distribution(param: Param) -> optuna.distributions.BaseDistribution:
    import optuna

    if param.kind == "Categorical":
        return optuna.distributions.CategoricalDistribution(list(param.values))
    log = param.scale == "Logarithmic"
    if param.kind == "Integer":
        return optuna.distributions.IntDistribution(int(param.low), int(param.high), log=log)
    if param.scale == "ReverseLogarithmic":  # searched as log(1 - x), log-uniform near 1
        return optuna.distributions.FloatDistribution(math.log(1.0 - param.high), math.log(1.0 - param.low))
    return optuna.distributions.FloatDistribution(param.low, param.high, log=log)


def _value(param: Param, sampled: Any) -> Any:
    if param.kind == "Continuous" and param.scale == "ReverseLogarithmic":
        return 1.0 - math.exp(float(sampled))
    return sampled


def _sampled(param: Param, text: str) -> Any:
    """A hyperparameter text back as the value optuna sampled (for warm-start parents)."""
    if param.kind == "Categorical":
        return text
    if param.kind == "Integer":
        return int(float(text))
    if param.scale == "ReverseLogarithmic":
        return math.log(1.0 - float(text))
    return float(text)


class OptunaSearch:
    """TPE (Bayesian) or Hyperband over random draws, through optuna's ask-and-tell interface."""

    def __init__(
        self, params: Sequence[Param], seed: int, *, maximize: bool, hyperband: bool, budget: int
    ) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.params = list(params)
        self.distributions = {p.name: _distribution(p) for p in self.params}
        if hyperband:
            sampler: optuna.samplers.BaseSampler = optuna.samplers.RandomSampler(seed=seed)
            pruner: optuna.pruners.BasePruner = optuna.pruners.HyperbandPruner()
        else:
            # optuna's default of 10 random start-up trials would be the whole of a small budget.
            sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, budget // 3)))
            pruner = optuna.pruners.NopPruner()
        self.study = optuna.create_study(
            direction="maximize" if maximize else "minimize", sampler=sampler, pruner=pruner
        )
        self.trials: dict[int, optuna.trial.Trial] = {}

    def learn(self, hyperparameters: Mapping[str, str], objective: float) -> None:
        """A warm-start parent's trial, told as if it had run here."""
        import optuna

        params = {
            p.name: _sampled(p, hyperparameters[p.name]) for p in self.params if p.name in hyperparameters
        }
        if len(params) != len(self.params):
            return
        self.study.add_trial(
            optuna.trial.create_trial(params=params, distributions=self.distributions, value=objective)
        )

    def ask(self) -> tuple[int, dict[str, str]] | None:
        trial = self.study.ask(self.distributions)
        self.trials[trial.number] = trial
        return trial.number, {p.name: p.text(_value(p, trial.params[p.name])) for p in self.params}

    def tell(self, ticket: int, objective: float | None) -> None:
        import optuna

        trial = self.trials.pop(ticket, None)
        if trial is None:
            return
        if objective is None or not math.isfinite(objective):
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, objective)

    def report(self, ticket: int, step: int, value: float) -> bool:
        trial = self.trials.get(ticket)
        if trial is None or not math.isfinite(value):
            return False
        trial.report(value, step)
        return trial.should_prune()


def search_for(
    strategy: str, params: Sequence[Param], seed: int, *, maximize: bool, budget: int
) -> RandomSearch | GridSearch | OptunaSearch:
    if strategy == "Grid":
        return GridSearch(params)
    if strategy == "Random":
        return RandomSearch(params, seed)
    return OptunaSearch(params, seed, maximize=maximize, hyperband=strategy == "Hyperband", budget=budget)


def median_rule_stops(
    current: Sequence[float], earlier: Sequence[Sequence[float]], *, maximize: bool
) -> bool:
    """SageMaker's early-stopping rule after the current trial's latest report.

    ``current`` is the trial's objective at each report so far; ``earlier`` the same series of the
    trials that ended before. The trial stops when its latest value is worse than the median, over
    the earlier trials that reached as many reports, of their running averages up to that report.
    """
    step = len(current)
    if step == 0:
        return False
    averages = [statistics.fmean(series[:step]) for series in earlier if len(series) >= step]
    if len(averages) < MEDIAN_RULE_MIN_TRIALS:
        return False
    median = statistics.median(averages)
    latest = current[-1]
    return latest < median if maximize else latest > median
