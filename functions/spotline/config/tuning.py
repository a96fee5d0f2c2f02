"""The ``tuning`` section: a config that becomes a SageMaker hyperparameter tuning job on Spot.

Every rule SageMaker enforces on ``CreateHyperParameterTuningJob`` is checked here, before anything
is paid for. Where a rule comes from:

* the API model (botocore's ``sagemaker`` service model): at most 30 ranges of each kind, at most
  30 values per categorical range, ``MaxParallelTrainingJobs`` >= 1, ``ResourceLimits.MaxRuntime
  InSeconds`` 120..15,768,000, 1..5 warm-start parents, the strategies, ``Off | Auto`` early
  stopping, ``Maximize | Minimize`` objectives, a ``RandomSeed`` >= 0;
* "Define Hyperparameter Ranges" (SageMaker Developer Guide): at most 30 tunable hyperparameters
  in all; logarithmic scaling only for ranges whose values are all above 0; reverse logarithmic
  scaling only for continuous ranges within 0 <= x < 1; the ``Grid`` strategy takes categorical
  ranges only, and its number of training jobs is the number of combinations (given or inferred);
* "Resource Limits for Automatic Model Tuning": at most 750 training jobs per tuning job with
  Bayesian, Hyperband and Grid (10,000 with Random, above 750 by quota increase), at most 100
  parallel training jobs (10 by default), at most 30 days of run time;
* "How Hyperparameter Tuning Works" (Hyperband): ``TrainingJobEarlyStoppingType`` must be ``Off``
  with Hyperband, which stops trials itself; ``HyperbandStrategyConfig``: ``MaxResource`` at
  most 20,000;
* "Run a Warm Start Hyperparameter Tuning Job": warm start searches with Bayesian or random
  search; at most 5 parents, all in a terminal state, with the same objective metric, the same
  number of hyperparameters and the same type for each (checked at launch, from the ledger);
* "Stop Training Jobs Early": early stopping compares the objective that each trial reports
  after each "epoch", so a trial that reports its objective once cannot be stopped early.

Ranges are dotted config keys, as hyperparameters override them; each candidate value (every
categorical value, the two ends of a numeric range) is validated with the same schema the
container applies, so a trial the container would refuse is refused here.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from spotline.config.job import JobSection
from spotline.config.loader import dump_yaml_value
from spotline.config.metrics import run_metric_names
from spotline.config.model import EvalSection, SolverSection
from spotline.config.schema import Duration, Issue, Scalar, setting
from spotline.metric_names import VAL_MAP, VAL_MAP50

Strategy = Literal["bayesian", "random", "grid", "hyperband"]
# Chosen on evidence: benchmarks/bench_tuning_strategies.py (figures in benchmarks/README.md).
DEFAULT_STRATEGY: Strategy = "bayesian"
DEFAULT_TRIALS = 10
MAX_TRIALS: Mapping[str, int] = {"bayesian": 750, "random": 10_000, "grid": 750, "hyperband": 750}
MAX_RANGES = 30
MAX_CATEGORICAL_VALUES = 30
MAX_PARALLEL_TRIALS = 100
MAX_WARM_START_PARENTS = 5
MIN_TUNING_RUNTIME_S = 120
MAX_TUNING_RUNTIME_S = 30 * 86400
MAX_HYPERBAND_RESOURCE = 20_000
WARM_STARTABLE = ("bayesian", "random")
# Top-level sections a range may not change: where and how the job runs, the tuning, the gate.
CONTROL_SECTIONS = ("job", "tuning", "promote", "mode")
# Keys that set how long a trial trains: Hyperband decides that itself.
RESOURCE_KEYS = ("solver.max_iter", "eval.period_iters", "solver.log_period")
# Every trial gets the TrainingJobDefinition's CheckpointConfig as it is, so the container keeps a
# trial's checkpoints under a folder of its own job name when the job's environment sets this.
TRIAL_CHECKPOINTS_ENV = "SPOTLINE_CHECKPOINTS_PER_JOB"


@dataclass(frozen=True, kw_only=True)
class ObjectiveSection:
    metric: str = setting(
        required=True,
        pattern=r".{1,255}",
        expect="a metric name of at most 255 characters",
        help="the metric the tuner optimises: one the run reports, such as val/mAP50",
    )
    goal: Literal["maximize", "minimize"] = setting("maximize", help="maximize or minimize the metric")


@dataclass(frozen=True, kw_only=True)
class RangeSection:
    """One tunable key: categorical (``values``) or numeric (``min`` and ``max``)."""

    min: float | None = setting(None, help="lowest value of a numeric range")
    max: float | None = setting(None, help="highest value of a numeric range")
    type: Literal["continuous", "integer"] = setting("continuous", help="continuous or integer (numeric)")
    scale: Literal["auto", "linear", "log", "reverse_log"] = setting(
        "auto", help="how the tuner searches a numeric range: auto, linear, log or reverse_log"
    )
    values: tuple[Scalar, ...] | None = setting(
        None,
        min_items=1,
        max_items=MAX_CATEGORICAL_VALUES,
        help="the values to choose from (a categorical range)",
    )

    @property
    def kind(self) -> Literal["categorical", "continuous", "integer"]:
        return "categorical" if self.values is not None else self.type

    def candidates(self) -> tuple[Any, ...]:
        """The values whose validity stands for the whole range: every choice, or both ends."""
        if self.values is not None:
            return tuple(self.values)
        if self.min is None or self.max is None:
            return ()
        if self.type == "integer":
            return (int(self.min), int(self.max))
        return (self.min, self.max)

    def checks(self, path: str) -> list[Issue]:
        at = f"{path}." if path else ""
        if self.values is not None:
            issues = []
            if self.min is not None or self.max is not None:
                issues.append(Issue(path, None, "a range has values (categorical) or min and max, not both"))
            if self.type != "continuous" or self.scale != "auto":
                issues.append(Issue(path, None, "type and scale belong to min/max ranges, not to values"))
            texts = [dump_yaml_value(v) for v in self.values]
            repeated = sorted({t for t in texts if texts.count(t) > 1})
            if repeated:
                issues.append(
                    Issue(f"{at}values", list(self.values), f"each value once (repeated: {repeated})")
                )
            return issues
        if self.min is None or self.max is None:
            missing = "min" if self.min is None else "max"
            return [Issue(f"{at}{missing}", None, "a numeric range needs min and max (or give values)")]
        return self._numeric_checks(at, self.min, self.max)

    def _numeric_checks(self, at: str, low: float, high: float) -> list[Issue]:
        issues = []
        if low >= high:
            issues.append(Issue(f"{at}max", high, f"must be above min ({low:g}); one value is not a range"))
        if self.type == "integer":
            for key, bound in (("min", low), ("max", high)):
                if bound != int(bound):
                    issues.append(Issue(f"{at}{key}", bound, "an integer range takes whole numbers"))
        if self.scale == "log" and low <= 0:
            issues.append(Issue(f"{at}min", low, "logarithmic scaling needs values above 0"))
        if self.scale == "reverse_log":
            if self.type == "integer":
                issues.append(
                    Issue(f"{at}scale", self.scale, "reverse logarithmic scaling is for continuous ranges")
                )
            if low < 0 or high >= 1:
                issues.append(
                    Issue(f"{at}scale", self.scale, "reverse logarithmic scaling needs 0 <= min, max < 1")
                )
        return issues


@dataclass(frozen=True, kw_only=True)
class WarmStartSection:
    parents: tuple[str, ...] = setting(
        required=True,
        key="from",
        min_items=1,
        max_items=MAX_WARM_START_PARENTS,
        pattern=r"[a-z0-9](-?[a-z0-9])*",
        expect="the run id of an earlier tuning run (see spotline status)",
        help="the run ids of earlier tuning runs whose trials inform this one (at most 5)",
    )
    type: Literal["transfer_learning", "identical_data_and_algorithm"] = setting(
        "transfer_learning",
        help="transfer_learning (data or ranges may differ) or identical_data_and_algorithm",
    )

    def checks(self, path: str) -> list[Issue]:
        repeated = sorted({p for p in self.parents if self.parents.count(p) > 1})
        if repeated:
            return [Issue(f"{path}.from", list(self.parents), f"each parent once (repeated: {repeated})")]
        return []


@dataclass(frozen=True, kw_only=True)
class TuningSection:
    objective: ObjectiveSection = setting(required=True, help="what the tuner optimises")
    strategy: Strategy = setting(DEFAULT_STRATEGY, help="bayesian, random, grid or hyperband")
    max_trials: int | None = setting(
        None,
        min=1,
        max=MAX_TRIALS["random"],
        help=f"training jobs the tuner runs (default {DEFAULT_TRIALS}; grid: the number of combinations)",
    )
    parallel_trials: int = setting(2, min=1, max=MAX_PARALLEL_TRIALS, help="trials running at once")
    early_stopping: Literal["off", "auto"] = setting(
        "off", help="auto: stop trials whose objective falls behind the median of earlier trials"
    )
    max_runtime: Duration | None = setting(
        None,
        min=MIN_TUNING_RUNTIME_S,
        max=MAX_TUNING_RUNTIME_S,
        help="run time of the whole tuning job (default: until its trials are done)",
    )
    seed: int | None = setting(
        None, min=0, max=2**31 - 1, help="the tuner's random seed (reproducible choices)"
    )
    ranges: Mapping[str, RangeSection] = setting(
        required=True,
        min_items=1,
        max_items=MAX_RANGES,
        help="tunable config keys (dotted, as hyperparameters override them) and their ranges",
    )
    warm_start: WarmStartSection | None = setting(None, help="start from the trials of earlier tuning runs")
    follow_up_lost_trials: bool = setting(
        False,
        help="trials that Spot capacity ended are not replaced by the tuner: run them again in one "
        "warm-started follow-up tuning job",
    )

    @property
    def trials(self) -> int:
        """``MaxNumberOfTrainingJobs``: what was asked, or the default (grid: every combination)."""
        if self.max_trials is not None:
            return self.max_trials
        if self.strategy == "grid":
            return grid_size(self)
        return DEFAULT_TRIALS

    def checks(self, path: str) -> list[Issue]:
        at = f"{path}." if path else ""
        issues = []
        strategy = self.strategy
        if strategy == "grid":
            numeric = [k for k, r in self.ranges.items() if r.kind != "categorical"]
            if numeric:
                issues.append(
                    Issue(f"{at}ranges", numeric, "the grid strategy takes categorical ranges (values) only")
                )
            elif self.max_trials is not None and self.max_trials != grid_size(self):
                issues.append(
                    Issue(
                        f"{at}max_trials",
                        self.max_trials,
                        f"with grid it must be the number of combinations ({grid_size(self)}), or left out",
                    )
                )
        limit = MAX_TRIALS[strategy]
        if not issues and self.trials > limit:
            issues.append(
                Issue(f"{at}max_trials", self.trials, f"the {strategy} strategy runs at most {limit}")
            )
        if strategy == "hyperband" and self.early_stopping == "auto":
            issues.append(
                Issue(
                    f"{at}early_stopping",
                    "auto",
                    "must be off with hyperband (Hyperband stops trials itself)",
                )
            )
        if strategy not in WARM_STARTABLE:
            if self.warm_start is not None:
                issues.append(Issue(f"{at}warm_start", None, "warm start works with bayesian or random only"))
            if self.follow_up_lost_trials:
                issues.append(
                    Issue(
                        f"{at}follow_up_lost_trials",
                        True,
                        "the follow-up is warm-started, which works with bayesian or random only",
                    )
                )
        return issues


def grid_size(tuning: TuningSection) -> int:
    """The number of combinations of the categorical ranges."""
    return math.prod(len(r.values or ()) for r in tuning.ranges.values())


def objective_reports(solver: SolverSection, evaluation: EvalSection, metric: str) -> int:
    """How many times a trial prints ``metric``: the "epochs" early stopping and Hyperband count.

    Validation metrics are printed every ``eval.period_iters`` steps and at the end; training
    metrics every ``solver.log_period`` steps and at the end.
    """
    period = evaluation.period_iters if metric in (VAL_MAP50, VAL_MAP) else solver.log_period
    return math.ceil(solver.max_iter / period) if period else 1


class TunedConfig(Protocol):
    """What the tuning checks read of a whole config (:class:`spotline.config.RunConfig`)."""

    @property
    def mode(self) -> str: ...
    @property
    def job(self) -> JobSection: ...
    @property
    def tuning(self) -> TuningSection | None: ...
    @property
    def solver(self) -> SolverSection: ...
    @property
    def eval(self) -> EvalSection: ...


def tuning_issues(
    config: TunedConfig,
    *,
    key_type: Callable[[str], Any],
    setting_keys: list[str],
    trial_issues: Callable[[str, str], list[str]],
) -> list[Issue]:
    """What the tuning section cannot see alone: its keys, its objective, the job it runs.

    ``key_type(dotted)`` is the type of a config key (None: no such key), ``trial_issues(key,
    text)`` what the schema says of the config with ``key`` set to ``text`` (a trial's config).
    """
    tuning = config.tuning
    if tuning is None:
        return []
    issues = _job_issues(config)
    metrics = run_metric_names(config.job)
    metric = tuning.objective.metric
    if metric not in metrics:
        issues.append(
            Issue(
                "tuning.objective.metric",
                metric,
                f"the run never reports it; it reports {', '.join(metrics)}"
                + ("" if "val" in config.job.channels else " (validation metrics need a 'val' channel)"),
            )
        )
    elif tuning.early_stopping == "auto" or tuning.strategy == "hyperband":
        issues.extend(_intermediate_report_issues(config, tuning, metric))
    for key, spec in tuning.ranges.items():
        issues.extend(
            _range_key_issues(
                key, spec, tuning, key_type=key_type, setting_keys=setting_keys, trial_issues=trial_issues
            )
        )
    return issues


def _job_issues(config: TunedConfig) -> list[Issue]:
    """The parts of a training run that a tuning run cannot honour: the tuner runs the trials."""
    job, issues = config.job, []
    why = "trials are the tuner's to run: spotline does not relaunch them"
    if config.mode != "train":
        issues.append(Issue("mode", config.mode, "a tuning run trains"))
    if job.fallback_instance_types:
        issues.append(Issue("job.fallback_instance_types", list(job.fallback_instance_types), why))
    if job.on_demand_fallback:
        issues.append(Issue("job.on_demand_fallback", True, why))
    if job.continue_after_max_runtime:
        issues.append(Issue("job.continue_after_max_runtime", True, why))
    return issues


def _intermediate_report_issues(config: TunedConfig, tuning: TuningSection, metric: str) -> list[Issue]:
    reports = objective_reports(config.solver, config.eval, metric)
    using = "hyperband" if tuning.strategy == "hyperband" else "early_stopping: auto"
    if reports < 2:
        where = "eval.period_iters" if metric in (VAL_MAP50, VAL_MAP) else "solver.log_period"
        return [
            Issue(
                "tuning.objective.metric",
                metric,
                f"{using} compares trials at each report of the objective, and a trial reports {metric} "
                f"only once: set {where} below solver.max_iter",
            )
        ]
    if tuning.strategy == "hyperband" and reports > MAX_HYPERBAND_RESOURCE:
        return [
            Issue(
                "tuning.objective.metric",
                metric,
                f"a trial reports it {reports} times; Hyperband counts at most {MAX_HYPERBAND_RESOURCE}",
            )
        ]
    return []


def _range_key_issues(
    key: str,
    spec: RangeSection,
    tuning: TuningSection,
    *,
    key_type: Callable[[str], Any],
    setting_keys: list[str],
    trial_issues: Callable[[str, str], list[str]],
) -> list[Issue]:
    path = f"tuning.ranges.{key}"
    if key.split(".", 1)[0] in CONTROL_SECTIONS:
        return [Issue(path, key, "a range may not change the job, the tuning, the promote gate or the mode")]
    hint = key_type(key)
    if hint is None or key not in setting_keys:
        close = difflib.get_close_matches(key, setting_keys, n=1, cutoff=0.6)
        hint_text = f"; did you mean '{close[0]}'?" if close else ""
        return [
            Issue(path, key, f"not a config key{hint_text} (ranges are dotted keys such as solver.base_lr)")
        ]
    if tuning.strategy == "hyperband" and key in RESOURCE_KEYS:
        return [
            Issue(path, key, "Hyperband decides how long each trial trains: this key is not tunable with it")
        ]
    if spec.kind == "integer" and hint is not int:
        return [Issue(path, key, "an integer range needs a whole-number key")]
    if spec.kind == "continuous" and hint is not float:
        fix = " (add type: integer)" if hint is int else ""
        return [Issue(path, key, f"a continuous range needs a number key{fix}")]
    issues = []
    for value in spec.candidates():
        text = dump_yaml_value(value)
        for problem in trial_issues(key, text):
            issues.append(Issue(path, value, f"a trial with {key}={text} would be refused: {problem}"))
    return issues
