"""Cancelling a run because a person asked: the one place that decides what "cancel" does.

* a RUNNING run: its current job is stopped (``StopTrainingJob``); SageMaker then reports it
  ``Stopped`` and the job-state function settles the run CANCELLED as for any stop by a person;
* a RETRYING run (waiting out a backoff or a quota on the relaunch queue): settled CANCELLED at once
  with its report and alert; the queued relaunch then finds the run settled and does nothing;
* a PENDING run is still being launched: nothing to stop yet, the caller is told to retry;
* a settled run stays as it is.

Duplicates change nothing: the settlement is a conditional write and its alert is sent once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass

from spotline.adapters.training_jobs import JobNotFound, JobNotStoppable, TrainingJobs
from spotline.domain.classify import Outcome
from spotline.domain.settings import Settings
from spotline.domain.states import TERMINAL_RUN_STATES, RunStatus
from spotline.ledger.records import Run
from spotline.ledger.runs import RunLedger
from spotline.runs.publish import RunPublisher

logger = logging.getLogger(__name__)


class RunNotFound(LookupError):
    """No run of that id in the ledger."""


@dataclass(frozen=True)
class CancelOutcome:
    """``stopping`` (its job was asked to stop), ``cancelled`` (settled now), ``settled`` (it had
    already ended) or ``launching`` (PENDING: nothing to stop yet, ask again)."""

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
    publisher: RunPublisher
    clock: Callable[[], float] = time.time

    def cancel(self, run_id: str, *, reason: str = "cancelled by a person") -> CancelOutcome:
        run = self.ledger.get_run(run_id)
        if run is None:
            raise RunNotFound(run_id)
        if run.status in TERMINAL_RUN_STATES:
            return CancelOutcome("settled", run_id, run.status, detail=f"it had already ended {run.status}")
        if run.status == RunStatus.RETRYING:
            return self._cancel_waiting(run, reason)
        if run.status == RunStatus.RUNNING:
            return self._stop_current_job(run)
        return CancelOutcome("launching", run_id, run.status, detail="its first job is being created")

    def _cancel_waiting(self, run: Run, reason: str) -> CancelOutcome:
        waiting = f" (attempt {run.next.attempt} will not start)" if run.next else ""
        settlement = self.publisher.finish(
            run,
            RunStatus.CANCELLED,
            attempt=run.attempt,
            outcome=Outcome.STOPPED_BY_USER.value,
            reason=reason,
            expected=RunStatus.RETRYING,
        )
        if settlement.action == "stale":  # it moved on meanwhile (relaunched): look again
            current = self.ledger.get_run(run.run_id)
            if current is not None and current.status == RunStatus.RUNNING:
                return self._stop_current_job(current)
            status = current.status if current else run.status
            return CancelOutcome("settled", run.run_id, status, detail=f"it is {status}")
        logger.info("run %s cancelled while waiting%s", run.run_id, waiting, extra={"run_id": run.run_id})
        return CancelOutcome("cancelled", run.run_id, RunStatus.CANCELLED, detail=f"cancelled{waiting}")

    def _stop_current_job(self, run: Run) -> CancelOutcome:
        attempts = self.ledger.attempts(run.run_id)
        current = next((a for a in attempts if a.attempt == run.attempt), None)
        if current is None:
            return CancelOutcome("launching", run.run_id, run.status, detail="its job is being created")
        try:
            self.jobs.stop(current.job_name)
        except (JobNotStoppable, JobNotFound) as e:
            return CancelOutcome(
                "settled", run.run_id, run.status, current.job_name, f"its job is already ending ({e})"
            )
        logger.info("stopping %s of run %s", current.job_name, run.run_id, extra={"run_id": run.run_id})
        return CancelOutcome(
            "stopping",
            run.run_id,
            run.status,
            current.job_name,
            "the run settles CANCELLED when SageMaker reports the job stopped",
        )
