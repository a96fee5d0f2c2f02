"""A tuning job ended: settle its run with the best trial, or run the trials Spot capacity ended again.

The flow, for one ``SageMaker HyperParameter Tuning Job State Change`` event in a terminal status:

1. find the run through the ledger's link from the tuning job (or the job's run-id tag); a run
   still PENDING (its launch died after the create) is caught up to RUNNING;
2. DescribeHyperParameterTuningJob, and bring the run's trials level with the tuner's list
   (ListTrainingJobsForHyperParameterTuningJob): a trial whose own event is late or lost is
   described and recorded here — at most the tuning jobs' ``MaxNumberOfTrainingJobs`` of them;
3. trials that Spot capacity ended (Stopped with MaxWaitTimeExceeded or Interrupted, a capacity
   error) are not replaced by the tuner — SageMaker counts every launched trial against
   ``MaxNumberOfTrainingJobs`` and retries trials only on internal errors. With
   ``tuning.follow_up_lost_trials`` the run's first tuning job is followed, once, by a
   warm-started tuning job of that many trials; otherwise the report and the alert say how many
   were lost. Never a silent shortfall;
4. settle the run once (:meth:`spotline.runs.publish.RunPublisher.finish`): a completed tuning
   job publishes its best trial's model and, with a ``promote:`` gate, promotes it with its
   lineage (tuning run, trial, hyperparameters); a failed or stopped one settles with what
   finished. The report lists every trial; its cost and Spot savings are the trials' sums.

Every step is a conditional write or guarded by a notice: redelivered events create no second
follow-up and send no second message.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any

from spotline.adapters.training_jobs import JobAlreadyExists, JobNotFound, JobRequestRejected, TrainingJobs
from spotline.adapters.tuning_jobs import TuningJobs
from spotline.domain.classify import TERMINAL_JOB_STATUSES
from spotline.domain.events import TuningJobStateChange
from spotline.domain.settings import Settings
from spotline.domain.states import TERMINAL_RUN_STATES, RunStatus
from spotline.domain.tuning_requests import follow_up_request
from spotline.ledger.records import Run, Trial
from spotline.ledger.runs import RunLedger, TransitionRefused
from spotline.ledger.trials import TrialLedger
from spotline.runs.job_state import StateOutcome
from spotline.runs.publish import RunPublisher
from spotline.tuning.summary import best_trial, lost_to_spot, shortfall, tuning_summary
from spotline.tuning.trials import TrialRecorder, trial_from_job

logger = logging.getLogger(__name__)

TERMINAL_TUNING_STATUSES = frozenset({"Completed", "Failed", "Stopped"})
BUDGET_CAP = "budget_usd"


@dataclass
class TuningEnded:
    settings: Settings
    _: KW_ONLY
    ledger: RunLedger
    trials: TrialLedger
    tuning: TuningJobs
    jobs: TrainingJobs
    publisher: RunPublisher
    trial_events: TrialRecorder
    clock: Callable[[], float] = time.time

    def on_tuning_job_ended(self, change: TuningJobStateChange) -> StateOutcome:
        if change.status not in TERMINAL_TUNING_STATUSES:
            return StateOutcome("ignored", reason=f"status {change.status} is not terminal")
        run = self.trial_events.run_of(change.name, change.tags)
        if run is None:
            return StateOutcome("ignored", reason=f"tuning job {change.name} is not spotline's")
        index = run.tuning_jobs.index(change.name) + 1
        if run.status in TERMINAL_RUN_STATES:
            return StateOutcome("duplicate", run.run_id, index, reason=f"run already {run.status}")
        if run.status == RunStatus.PENDING:  # the launch died after the create: catch it up
            with contextlib.suppress(TransitionRefused):
                self.ledger.mark_running(run.run_id, attempt=1, now=self.clock(), expected=RunStatus.PENDING)
            run = self.ledger.get_run(run.run_id) or run
        if index < run.attempt:
            return self._continue_follow_up(run)
        describe = self.tuning.describe(change.name)
        status = str(describe.get("HyperParameterTuningJobStatus"))
        if status not in TERMINAL_TUNING_STATUSES:
            return StateOutcome(
                "ignored", run.run_id, index, reason=f"DescribeHyperParameterTuningJob says {status}"
            )
        trials = self._trials_caught_up(run)
        lost = lost_to_spot(trials, change.name)
        policy = run.policy
        if (
            index == 1
            and lost
            and policy is not None
            and policy.follow_up_lost_trials
            and status == "Completed"
            and not run.cancel_reason
            and not run.stop_reason
        ):
            return self._follow_up(run, len(lost), trials)
        return self._settle(run, index, describe, trials)

    def _trials_caught_up(self, run: Run) -> list[Trial]:
        """The run's trials, every one the tuner lists recorded (described here if it is not yet)."""
        recorded = {t.job_name for t in self.trials.trials(run.run_id)}
        limits = ((run.first_request or {}).get("HyperParameterTuningJobConfig") or {}).get(
            "ResourceLimits"
        ) or {}
        limit = int(limits.get("MaxNumberOfTrainingJobs") or 0) or 1
        for tuning_job in run.tuning_jobs:
            for summary in self.tuning.trials(tuning_job, limit=limit):
                name = str(summary.get("TrainingJobName") or "")
                if (
                    not name
                    or name in recorded
                    or summary.get("TrainingJobStatus") not in TERMINAL_JOB_STATUSES
                ):
                    continue
                try:
                    describe = self.jobs.describe(name)
                except JobNotFound:
                    continue
                self.trials.record(trial_from_job(run, tuning_job, describe))
                recorded.add(name)
        return self.trials.trials(run.run_id)

    def _settle(self, run: Run, index: int, describe: Mapping[str, Any], trials: list[Trial]) -> StateOutcome:
        status = str(describe.get("HyperParameterTuningJobStatus"))
        best = best_trial(trials, run.policy.objective_goal if run.policy else None)
        note = shortfall(run, trials)
        cap = None
        if status == "Completed":
            to = RunStatus.SUCCEEDED if best else RunStatus.FAILED
            reason = note if best else "no trial reported the objective with a model"
        elif status == "Stopped" and run.stop_reason:
            to, reason, cap = RunStatus.FAILED, run.stop_reason, BUDGET_CAP
        elif status == "Stopped":
            to = RunStatus.CANCELLED
            reason = f"cancelled: {run.cancel_reason}" if run.cancel_reason else "stopped by a person"
        else:
            to = RunStatus.FAILED
            reason = str(describe.get("FailureReason") or "the tuning job failed")
        if note and note not in reason:
            reason = f"{reason}; {note}"
        best_describe = self._describe(best.job_name) if best else None
        settled = self.publisher.finish(
            run,
            to,
            attempt=index,
            outcome=status.upper(),
            reason=reason,
            cap=cap,
            describe=best_describe,
            extra_results={"tuning": tuning_summary(run, trials, best, describe)},
        )
        action = to.value.lower() if settled.action == "settled" else settled.action
        return StateOutcome(action, run.run_id, index, status.upper(), reason)

    def _describe(self, job_name: str) -> dict[str, Any] | None:
        try:
            return self.jobs.describe(job_name)
        except JobNotFound:
            return None

    def _follow_up(self, run: Run, lost: int, trials: list[Trial]) -> StateOutcome:
        """Claim the follow-up (the run moves on to its second tuning job), then run it."""
        request = self._follow_up_request(run, lost)
        name = str(request["HyperParameterTuningJobName"])
        self.trials.link_tuning_job(name, run.run_id)  # before the create, as for the first
        with contextlib.suppress(TransitionRefused):  # claimed by an earlier delivery: carry on
            self.ledger.start_follow_up(run.run_id, name, now=self.clock())
        run = self.ledger.get_run(run.run_id) or run
        if run.attempt != 2 or run.status != RunStatus.RUNNING:
            return StateOutcome("duplicate", run.run_id, 1, reason="the run moved on")
        return self._run_follow_up(run, request, lost, trials)

    def _follow_up_request(self, run: Run, lost: int) -> dict[str, Any]:
        if run.first_request is None:
            raise RuntimeError(f"run {run.run_id} is RUNNING without its tuning request")
        return follow_up_request(
            run.first_request, job_prefix=self.settings.job_prefix, run_id=run.run_id, lost_trials=lost
        )

    def _run_follow_up(
        self, run: Run, request: Mapping[str, Any], lost: int, trials: list[Trial]
    ) -> StateOutcome:
        """Create the follow-up (once: its name is the run's) and say so in one alert; a refused
        follow-up settles the run with what its first tuning job found."""
        name = str(request["HyperParameterTuningJobName"])
        try:
            self.tuning.create(request)
        except JobAlreadyExists:
            logger.info("follow-up %s already exists", name)
        except JobRequestRejected as e:
            describe = dict(self.tuning.describe(run.tuning_jobs[0]))
            describe |= {
                "HyperParameterTuningJobStatus": "Failed",
                "FailureReason": f"the follow-up was refused: {e}",
            }
            return self._settle(run, 2, describe, trials)
        reason = f"{lost} trial(s) lost to Spot capacity: the warm-started tuning job {name} runs them again"
        sent = self.publisher.announce_retry(
            run,
            next_attempt=2,
            body={
                "kind": run.kind.value,
                "status": RunStatus.RETRYING.value,
                "config": run.source.key,
                "outcome": "LOST_TO_SPOT",
                "reason": reason,
                "lost_trials": lost,
                "follow_up_tuning_job": name,
                "checkpoints": run.checkpoint_uri,
            },
        )
        return StateOutcome("retrying" if sent else "duplicate", run.run_id, 1, "LOST_TO_SPOT", reason, 2)

    def _continue_follow_up(self, run: Run) -> StateOutcome:
        """A redelivered end of the first tuning job once the follow-up was claimed: the delivery
        that claimed it may have died before creating it or before its alert."""
        trials = self._trials_caught_up(run)
        lost = len(lost_to_spot(trials, run.tuning_jobs[0]))
        return self._run_follow_up(run, self._follow_up_request(run, max(lost, 1)), lost, trials)
