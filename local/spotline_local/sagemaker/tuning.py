"""One local hyperparameter tuning job: its record, its trials as local training jobs, its events.

A tuner thread keeps ``MaxParallelTrainingJobs`` trials running until ``MaxNumberOfTrainingJobs``
were launched, each a training job created from the ``TrainingJobDefinition`` (the real container,
on the /opt/ml contract, with the tuning job's tags and its ``TuningJobArn``), named as SageMaker
names them: ``<tuning job>-<NNN>-<8 hex>``. It asks its search strategy for each trial's
hyperparameters (:mod:`spotline_local.sagemaker.search`), watches the objective each trial reports
for early stopping and Hyperband, and moves the tuning job as SageMaker does: ``InProgress`` until
every trial ended, ``Stopping`` and ``Stopped`` when stopped, ``Failed`` when its first trials all
failed, else ``Completed``. Every change of status is published as a "SageMaker HyperParameter
Tuning Job State Change" event with the real fields (``TrainingJobStatusCounters``,
``ObjectiveStatusCounters``, ``BestTrainingJob``).

Like SageMaker, the tuner does not replace a trial that Spot capacity ended: it counts against
``MaxNumberOfTrainingJobs`` (as ``Stopped``, or a failure); only internal errors are retried, by the
trial's own ``RetryStrategy``.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from spotline.domain.tuning_requests import DEFINITION_FIELDS
from spotline_local.sagemaker.jobs import TERMINAL, TrainingJob
from spotline_local.sagemaker.search import (
    LABELS,
    OptunaSearch,
    Search,
    median_rule_stops,
    search_for,
    seed_for,
    space,
)
from spotline_local.template import ACCOUNT_ID, REGION

log = logging.getLogger(__name__)

TERMINAL_TUNING = frozenset({"Completed", "Failed", "Stopped"})
POLL_S = 0.2
# SageMaker fails a tuning job whose first trials all fail ("No training job succeeded after 5 attempts").
FIRST_TRIALS_THAT_MUST_NOT_ALL_FAIL = 5
# What a trial's CreateTrainingJob takes from the tuning job's TrainingJobDefinition.
_DEFINITION_TO_JOB = (*DEFINITION_FIELDS, "Environment")
_EVENT_FIELDS = (
    "HyperParameterTuningJobName",
    "HyperParameterTuningJobArn",
    "HyperParameterTuningJobConfig",
    "TrainingJobDefinition",
    "HyperParameterTuningJobStatus",
    "TrainingJobStatusCounters",
    "ObjectiveStatusCounters",
    "BestTrainingJob",
    "FailureReason",
)
_TIME_FIELDS = ("CreationTime", "LastModifiedTime", "HyperParameterTuningEndTime")

StartTrial = Callable[[dict[str, Any], str], TrainingJob]


def tuning_job_arn(name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:hyper-parameter-tuning-job/{name.lower()}"


def trial_name(tuning_job: str, number: int) -> str:
    digest = hashlib.sha256(f"{tuning_job}#{number}".encode()).hexdigest()[:8]
    return f"{tuning_job}-{number:03d}-{digest}"


class Trial:
    """A trial: its training job and the objective it reported, report by report."""

    def __init__(self, job: TrainingJob, ticket: int, tuned: Mapping[str, str], metric: str) -> None:
        self.job, self.ticket, self.tuned, self.metric = job, ticket, dict(tuned), metric
        self.seen = 0  # objective reports already shown to the search and the early-stopping rule
        self.stopped_early = False
        self.told = False

    def reports(self) -> list[float]:
        return [float(p["Value"]) for p in list(self.job.metrics) if p["MetricName"] == self.metric]

    def objective(self) -> float | None:
        """The final objective, as SageMaker takes it: the last value the trial reported."""
        values = [
            float(m["Value"])
            for m in self.job.get("FinalMetricDataList") or []
            if m["MetricName"] == self.metric
        ]
        value = values[-1] if values else None
        return value if value is not None and math.isfinite(value) else None

    def summary(self, tuning_job: str, goal: str) -> dict[str, Any]:
        """A ``HyperParameterTrainingJobSummary``."""
        record = self.job.describe()
        objective = self.objective()
        summary: dict[str, Any] = {
            "TrainingJobName": record["TrainingJobName"],
            "TrainingJobArn": record["TrainingJobArn"],
            "TuningJobName": tuning_job,
            "CreationTime": record["CreationTime"],
            "TrainingJobStatus": record["TrainingJobStatus"],
            "TunedHyperParameters": dict(self.tuned),
            "ObjectiveStatus": _objective_status(record["TrainingJobStatus"], objective),
        }
        for key in ("TrainingStartTime", "TrainingEndTime", "FailureReason"):
            if record.get(key) is not None:
                summary[key] = record[key]
        if objective is not None:
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "Type": goal,
                "MetricName": self.metric,
                "Value": objective,
            }
        return summary


def _objective_status(status: str, objective: float | None) -> str:
    if status not in TERMINAL:
        return "Pending"
    return "Succeeded" if objective is not None else "Failed"


class TuningJob:
    """The record DescribeHyperParameterTuningJob returns, and the thread that runs the trials."""

    def __init__(
        self,
        request: Mapping[str, Any],
        *,
        start_trial: StartTrial,
        emit: Callable[[dict[str, Any]], None],
        parents: list[TuningJob],
    ) -> None:
        now = time.time()
        self._lock = threading.Lock()
        self._emit = emit
        self._start_trial = start_trial
        self.stop_requested = threading.Event()
        self.tags = {t["Key"]: t.get("Value", "") for t in request.get("Tags", [])}
        self.name = str(request["HyperParameterTuningJobName"])
        self.arn = tuning_job_arn(self.name)
        config = request["HyperParameterTuningJobConfig"]
        self.strategy = str(config["Strategy"])
        self.metric = str(config["HyperParameterTuningJobObjective"]["MetricName"])
        self.goal = str(config["HyperParameterTuningJobObjective"]["Type"])
        limits = config["ResourceLimits"]
        self.params = space(config.get("ParameterRanges") or {})
        self.budget = int(
            limits.get("MaxNumberOfTrainingJobs") or math.prod(len(p.values) for p in self.params)
        )
        self.parallel = int(limits["MaxParallelTrainingJobs"])
        self.max_runtime_s = limits.get("MaxRuntimeInSeconds")
        self.early_stopping = config.get("TrainingJobEarlyStoppingType") == "Auto"
        self.search: Search = search_for(
            self.strategy,
            self.params,
            seed_for(self.name, config.get("RandomSeed")),
            maximize=self.goal == "Maximize",
            budget=self.budget,
        )
        self.parents = parents
        if isinstance(self.search, OptunaSearch):
            for parent in parents:
                for trial in parent.trials:
                    objective = trial.objective()
                    if objective is not None:
                        self.search.learn(trial.tuned, objective)
        self.trials: list[Trial] = []
        self._record: dict[str, Any] = {
            k: copy.deepcopy(v)
            for k, v in request.items()
            if k not in ("Tags", "HyperParameterTuningJobName")
        }
        self._record.update(
            HyperParameterTuningJobName=self.name,
            HyperParameterTuningJobArn=self.arn,
            HyperParameterTuningJobStatus="InProgress",
            CreationTime=now,
            LastModifiedTime=now,
        )
        log.info("tuning job %s: %s", self.name, LABELS[self.strategy])

    @property
    def status(self) -> str:
        with self._lock:
            return str(self._record["HyperParameterTuningJobStatus"])

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_TUNING

    def start(self) -> threading.Thread:
        self._publish()
        thread = threading.Thread(target=self._run_safely, name=f"tuning-{self.name}", daemon=True)
        thread.start()
        return thread

    # -- what the API answers ----------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        with self._lock:
            record = copy.deepcopy(self._record)
        record.update(self._counters())
        best = self._best(self.trials)
        if best is not None:
            record["BestTrainingJob"] = best
        if (
            self.parents
            and record.get("WarmStartConfig", {}).get("WarmStartType") == "IdenticalDataAndAlgorithm"
        ):
            overall = self._best([t for p in [self, *self.parents] for t in p.trials])
            if overall is not None:
                record["OverallBestTrainingJob"] = overall
        return record

    def summaries(self) -> list[dict[str, Any]]:
        return [t.summary(self.name, self.goal) for t in list(self.trials)]

    def _best(self, trials: list[Trial]) -> dict[str, Any] | None:
        scored = [(t.objective(), i, t) for i, t in enumerate(trials) if t.job.status in TERMINAL]
        ranked = [(o, i, t) for o, i, t in scored if o is not None]
        if not ranked:
            return None
        sign = 1.0 if self.goal == "Maximize" else -1.0
        _, _, best = max(ranked, key=lambda item: (sign * float(item[0] or 0.0), -item[1]))
        return best.summary(self.name, self.goal)

    def _counters(self) -> dict[str, Any]:
        jobs = [t.job.describe() for t in list(self.trials)]
        status = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}
        objective = {"Succeeded": 0, "Pending": 0, "Failed": 0}
        for trial, job in zip(list(self.trials), jobs, strict=False):
            state = job["TrainingJobStatus"]
            if state == "Failed":
                internal = str(job.get("FailureReason") or "").startswith("InternalServerError")
                status["RetryableError" if internal else "NonRetryableError"] += 1
            elif state in status:
                status[state] += 1
            else:
                status["InProgress"] += 1
            objective[_objective_status(state, trial.objective())] += 1
        return {"TrainingJobStatusCounters": status, "ObjectiveStatusCounters": objective}

    # -- the tuner ---------------------------------------------------------------------------------

    def _run_safely(self) -> None:
        try:
            self._run()
        except Exception as e:
            log.exception("local tuning job %s broke", self.name)
            self._finish("Failed", f"InternalServerError: local tuner: {e}")

    def _run(self) -> None:
        started = time.time()
        exhausted = False
        while True:
            running = [t for t in self.trials if t.job.status not in TERMINAL]
            if self.stop_requested.is_set() or self._past_runtime(started):
                self._stop_trials(running)
                if not running:
                    self._finish("Stopped")
                    return
            else:
                while not exhausted and len(running) < self.parallel and len(self.trials) < self.budget:
                    proposal = self.search.ask()
                    if proposal is None:
                        exhausted = True
                        break
                    running.append(self._launch(*proposal))
                if not running and (exhausted or len(self.trials) >= self.budget):
                    self._finish(*self._verdict())
                    return
            self._watch()
            time.sleep(POLL_S)

    def _past_runtime(self, started: float) -> bool:
        return self.max_runtime_s is not None and time.time() - started > float(self.max_runtime_s)

    def _launch(self, ticket: int, tuned: dict[str, str]) -> Trial:
        definition = self._record["TrainingJobDefinition"]
        name = trial_name(self.name, len(self.trials) + 1)
        request = {k: copy.deepcopy(definition[k]) for k in _DEFINITION_TO_JOB if k in definition}
        request["TrainingJobName"] = name
        request["HyperParameters"] = {
            **(definition.get("StaticHyperParameters") or {}),
            **tuned,
            "_tuning_objective_metric": self.metric,
        }
        request["Tags"] = [{"Key": k, "Value": v} for k, v in self.tags.items()]
        trial = Trial(self._start_trial(request, self.arn), ticket, tuned, self.metric)
        self.trials.append(trial)
        log.info("tuning job %s: trial %s with %s", self.name, name, tuned)
        return trial

    def _watch(self) -> None:
        """Show new objective reports to the search and the early-stopping rule; hear the ends."""
        maximize = self.goal == "Maximize"
        for trial in list(self.trials):
            reports = trial.reports()
            for step in range(trial.seen, len(reports)):
                if trial.job.status in TERMINAL or trial.stopped_early:
                    break
                earlier = [t.reports() for t in self.trials if t is not trial and t.job.status in TERMINAL]
                stop = self.search.report(trial.ticket, step + 1, reports[step])
                if self.early_stopping and median_rule_stops(reports[: step + 1], earlier, maximize=maximize):
                    stop = True
                if stop:
                    log.info(
                        "tuning job %s: trial %s stopped early at report %d",
                        self.name,
                        trial.job.name,
                        step + 1,
                    )
                    trial.stopped_early = True
                    trial.job.stop_requested.set()
            trial.seen = len(reports)
            if trial.job.status in TERMINAL and not trial.told:
                trial.told = True
                self.search.tell(trial.ticket, trial.objective())

    def _stop_trials(self, running: list[Trial]) -> None:
        if self.status == "InProgress":
            self._move("Stopping")
        for trial in running:
            trial.job.stop_requested.set()

    def _verdict(self) -> tuple[str, str | None]:
        first = self.trials[:FIRST_TRIALS_THAT_MUST_NOT_ALL_FAIL]
        if len(first) == FIRST_TRIALS_THAT_MUST_NOT_ALL_FAIL and all(t.objective() is None for t in first):
            return (
                "Failed",
                f"No training job succeeded after {FIRST_TRIALS_THAT_MUST_NOT_ALL_FAIL} attempts.",
            )
        if self.trials and all(t.objective() is None for t in self.trials):
            return "Failed", "No training job succeeded."
        return "Completed", None

    def request_stop(self) -> None:
        self.stop_requested.set()

    def _finish(self, status: str, reason: str | None = None) -> None:
        self._watch()
        fields: dict[str, Any] = {"HyperParameterTuningEndTime": time.time()}
        if reason:
            fields["FailureReason"] = reason
        self._move(status, **fields)

    def _move(self, status: str, **fields: Any) -> None:
        with self._lock:
            if self._record["HyperParameterTuningJobStatus"] in TERMINAL_TUNING:
                return
            self._record["HyperParameterTuningJobStatus"] = status
            self._record["LastModifiedTime"] = time.time()
            self._record.update(fields)
        self._publish()

    def _publish(self) -> None:
        """PutEvents entry of a "SageMaker HyperParameter Tuning Job State Change" (times in ms)."""
        record = self.describe()
        detail: dict[str, Any] = {k: record[k] for k in _EVENT_FIELDS if k in record}
        for key in _TIME_FIELDS:
            if key in record:
                detail[key] = int(float(record[key]) * 1000)
        if "BestTrainingJob" in detail:
            best = dict(detail["BestTrainingJob"])
            for key in ("CreationTime", "TrainingStartTime", "TrainingEndTime"):
                if key in best:
                    best[key] = int(float(best[key]) * 1000)
            detail["BestTrainingJob"] = best
        detail["Tags"] = dict(self.tags)
        self._emit(
            {
                "Source": "aws.sagemaker",
                "DetailType": "SageMaker HyperParameter Tuning Job State Change",
                "Resources": [self.arn],
                "Detail": detail,
            }
        )
