"""A trial of a tuning run ended: record it (status, objective, Spot billable and training seconds).

A trial is found through DescribeTrainingJob's ``TuningJobArn`` and the ledger's link from each
tuning job to its run (written before the tuning job was created), never through its name. A
trial that ends while its run is still PENDING (the launch died after the create) catches the run
up to RUNNING: its tuning job exists and is paid for. When the run has a budget and what its
trials cost so far reaches it, spotline stops the tuning job, once.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any

from spotline.adapters.tuning_jobs import TuningJobs
from spotline.domain.classify import Outcome
from spotline.domain.events import TrainingJobStateChange, parse_timestamp
from spotline.domain.naming import name_from_arn
from spotline.domain.requests import TAG_RUN_ID
from spotline.domain.savings import spent_usd
from spotline.domain.settings import Settings
from spotline.domain.states import TERMINAL_RUN_STATES, RunKind, RunStatus, TrialStatus
from spotline.domain.timefmt import iso_utc
from spotline.ledger.records import Run, Trial
from spotline.ledger.runs import RunLedger, TransitionRefused
from spotline.ledger.trials import TrialLedger
from spotline.runs.job_state import StateOutcome, classify_ended
from spotline.runs.publish import final_metrics

logger = logging.getLogger(__name__)

_TRIAL_NUMBER = re.compile(r"-(\d{3})-[0-9a-f]{8}$")
_STATUS = {
    Outcome.COMPLETED: TrialStatus.COMPLETED,
    Outcome.SPOT_UNAVAILABLE: TrialStatus.LOST_TO_SPOT,
    Outcome.STOPPED_BY_USER: TrialStatus.STOPPED,
    Outcome.MAX_RUNTIME: TrialStatus.STOPPED,
}


def tuned_hyperparameters(describe: Mapping[str, Any]) -> dict[str, str]:
    """The hyperparameters the tuner set, without SageMaker's own (``_tuning_objective_metric``)."""
    return {
        str(k): str(v)
        for k, v in (describe.get("HyperParameters") or {}).items()
        if not str(k).startswith(("_", "sagemaker_"))
    }


def trial_from_job(run: Run, tuning_job: str, describe: Mapping[str, Any]) -> Trial:
    """The trial as DescribeTrainingJob tells its end."""
    rule = classify_ended(describe)
    metrics = final_metrics(describe)
    metric = run.policy.objective_metric if run.policy else None
    number = _TRIAL_NUMBER.search(str(describe.get("TrainingJobName") or ""))
    created, ended = (parse_timestamp(describe.get(k)) for k in ("CreationTime", "TrainingEndTime"))
    resources = describe.get("ResourceConfig") or {}
    return Trial(
        run_id=run.run_id,
        job_name=str(describe["TrainingJobName"]),
        tuning_job=tuning_job,
        number=int(number.group(1)) if number else 0,
        instance_type=str(resources.get("InstanceType") or ""),
        spot=bool(describe.get("EnableManagedSpotTraining")),
        status=_STATUS.get(rule.outcome, TrialStatus.FAILED),
        outcome=rule.outcome.value,
        job_status=str(describe.get("TrainingJobStatus") or ""),
        secondary_status=describe.get("SecondaryStatus") or None,
        failure_reason=(str(describe.get("FailureReason"))[:1024] or None)
        if describe.get("FailureReason")
        else None,
        objective=metrics.get(metric) if metric else None,
        hyperparameters=tuned_hyperparameters(describe),
        metrics=metrics,
        model_artifact=(describe.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
        training_s=int(describe.get("TrainingTimeInSeconds") or 0),
        billable_s=int(describe.get("BillableTimeInSeconds") or 0),
        created_at=iso_utc(created.timestamp()) if created else None,
        ended_at=iso_utc(ended.timestamp()) if ended else None,
    )


@dataclass
class TrialRecorder:
    """Records the trials of tuning runs as the job-state function hears of their ends."""

    settings: Settings
    _: KW_ONLY
    ledger: RunLedger
    trials: TrialLedger
    tuning: TuningJobs
    prices: Mapping[str, float]
    clock: Callable[[], float] = time.time

    def run_of(self, tuning_job: str, tags: Mapping[str, str]) -> Run | None:
        """The tuning run of ``tuning_job``: by the ledger's link, else by the run-id tag."""
        run_id = self.trials.run_of_tuning_job(tuning_job) or tags.get(TAG_RUN_ID)
        run = self.ledger.get_run(run_id) if run_id else None
        if run is None or run.kind != RunKind.TUNING or tuning_job not in run.tuning_jobs:
            return None
        return run

    def on_trial_ended(self, change: TrainingJobStateChange, describe: Mapping[str, Any]) -> StateOutcome:
        tuning_job = name_from_arn(str(describe["TuningJobArn"]))
        run = self.run_of(tuning_job, change.tags)
        if run is None:
            return StateOutcome(
                "ignored",
                reason=f"{change.job_name}: a trial of tuning job {tuning_job}, which is not spotline's",
            )
        trial = self.trials.record(trial_from_job(run, tuning_job, describe))
        logger.info(
            "trial %s of run %s: %s, objective %s",
            trial.job_name,
            run.run_id,
            trial.status,
            trial.objective,
            extra={"run_id": run.run_id, "tuning_job": tuning_job},
        )
        if run.status == RunStatus.PENDING:  # the launch died after the create: its tuning job runs
            with contextlib.suppress(TransitionRefused):
                run = self.ledger.mark_running(
                    run.run_id, attempt=1, now=self.clock(), expected=RunStatus.PENDING
                )
        if run.status not in TERMINAL_RUN_STATES:
            self._enforce_budget(run)
        return StateOutcome("recorded", run.run_id, None, trial.outcome, trial.status.value)

    def _enforce_budget(self, run: Run) -> None:
        """Stop the tuning job once the trials' estimated spend reaches the run's budget."""
        policy = run.policy
        if policy is None or policy.budget_usd is None:
            return
        spent = spent_usd(self.trials.trials(run.run_id), self.prices, policy.instance_count)
        if spent < policy.budget_usd:
            return
        reason = f"budget_usd reached: the trials cost an estimated ${spent:.2f} of ${policy.budget_usd:.2f}"
        if self.ledger.note_stop(run.run_id, reason, now=self.clock()):
            logger.warning(
                "run %s: %s; stopping its tuning job", run.run_id, reason, extra={"run_id": run.run_id}
            )
        current = run.tuning_jobs[-1]
        self.tuning.stop(current)  # again on a redelivery: a stop of a stopping job changes nothing
