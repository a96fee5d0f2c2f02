"""Cancelling a run: the one function behind ``spotline cancel RUN`` and a deleted config.

1. the run is marked cancelled in the ledger (``request_cancel``, a conditional write): from then on
   no attempt starts — a relaunch that has not claimed its attempt yet settles it instead of
   creating a job, and the job-state function settles it CANCELLED when its current job ends;
2. a run waiting on the relaunch queue is settled CANCELLED at once, with its report and alert;
3. with ``stop_job`` (a person's cancel) its current job is stopped too (``StopTrainingJob``), so
   it ends now rather than when it finishes; a deleted config keeps the job it paid for.

A tuning run's tuning job is stopped in every case: its tuner would otherwise go on starting
trials, new spending, for a run that is cancelled; its end settles the run CANCELLED with the
trials that finished.

A settled run is left as it is; duplicates change nothing (conditional writes, send-once alerts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass

from spotline.adapters.training_jobs import JobNotFound, JobNotStoppable, TrainingJobs
from spotline.adapters.tuning_jobs import TuningJobs
from spotline.domain.settings import Settings
from spotline.domain.states import RunKind, RunStatus
from spotline.ledger.runs import RunLedger, TransitionRefused
from spotline.runs.publish import RunPublisher

logger = logging.getLogger(__name__)


class RunNotFound(LookupError):
    """No run of that id in the ledger."""


@dataclass(frozen=True)
class CancelOutcome:
    """``cancelled`` (settled now), ``stopping`` (its job was asked to stop), ``after-job`` (settled
    when its job ends) or ``settled`` (it had already ended)."""

    action: str
    run_id: str
    status: RunStatus
    job_name: str | None = None
    detail: str = ""


@dataclass
class RunCanceller:
    settings: Settings
    _: KW_ONLY
    ledger: RunLedger
    jobs: TrainingJobs
    tuning: TuningJobs
    publisher: RunPublisher
    clock: Callable[[], float] = time.time

    def cancel(self, run_id: str, *, reason: str, stop_job: bool) -> CancelOutcome:
        """Cancel ``run_id`` because of ``reason`` ("cancelled by a person", "its config ... was deleted")."""
        try:
            run = self.ledger.request_cancel(run_id, reason=reason, now=self.clock())
        except TransitionRefused:
            current = self.ledger.get_run(run_id)
            if current is None:
                raise RunNotFound(run_id) from None
            return CancelOutcome(
                "settled", run_id, current.status, detail=f"it had already ended {current.status}"
            )
        if run.status == RunStatus.RETRYING:
            waiting = f" (attempt {run.next.attempt} will not start)" if run.next else ""
            settled = self.publisher.cancel_waiting_run(run, f"cancelled: {reason}", unless_relaunching=True)
            if settled.action != "stale":
                logger.info("run %s cancelled while waiting", run_id, extra={"run_id": run_id})
                return CancelOutcome("cancelled", run_id, RunStatus.CANCELLED, detail=f"cancelled{waiting}")
            run = self.ledger.get_run(run_id) or run  # a relaunch claimed its attempt: its job ends the run
        if run.kind == RunKind.TUNING and run.tuning_jobs:
            # Again on a redelivery: a stop of a stopping or ended tuning job changes nothing.
            tuning_job = run.tuning_jobs[-1]
            self.tuning.stop(tuning_job)
            logger.info("stopping tuning job %s of run %s", tuning_job, run_id, extra={"run_id": run_id})
            return CancelOutcome(
                "after-job", run_id, run.status, tuning_job, "its tuning job stops; the run settles CANCELLED"
            )
        if not stop_job:
            return CancelOutcome(
                "after-job", run_id, run.status, detail="settled CANCELLED when its job ends"
            )
        return self._stop_current_job(run_id, run.attempt)

    def _stop_current_job(self, run_id: str, attempt: int) -> CancelOutcome:
        current = self.ledger.get_attempt(run_id, attempt) if attempt else None
        if current is None:
            return CancelOutcome(
                "after-job",
                run_id,
                RunStatus.PENDING,
                detail="its first job is being created; it stops there",
            )
        try:
            self.jobs.stop(current.job_name)
        except (JobNotStoppable, JobNotFound) as e:
            return CancelOutcome(
                "after-job", run_id, RunStatus.RUNNING, current.job_name, f"its job is already ending ({e})"
            )
        logger.info("stopping %s of run %s", current.job_name, run_id, extra={"run_id": run_id})
        return CancelOutcome(
            "stopping",
            run_id,
            RunStatus.RUNNING,
            current.job_name,
            "the run settles CANCELLED when SageMaker reports the job stopped",
        )
