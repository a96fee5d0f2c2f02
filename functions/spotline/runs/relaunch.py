"""Relaunching a run from its checkpoints, after its backoff, without a Lambda ever sleeping.

The job-state function puts ``{run_id, attempt, not_before}`` on the SQS delay queue with a
delay of at most 900 seconds (SQS's limit). The relaunch function receives it; if
``not_before`` is still ahead it puts the message back with the remaining delay, so waits of
hours cost a few messages, not billed sleep. When the time has come it builds attempt N from
the run's first request (same ``CheckpointConfig.S3Uri``, so the container resumes; the next
deterministic name ``…-aNN``; the planned rung) and creates it. A job name already taken means a
previous delivery launched it. A quota refusal at CreateTrainingJob waits longer and does not
use an attempt. A run a person cancelled while it waited is settled CANCELLED and gets no job:
the relaunch claims its attempt in the ledger before the create, and a cancel waits for a claimed
relaunch (:meth:`spotline.ledger.runs.RunLedger.claim_relaunch`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass

from spotline.adapters.relaunch_queue import RelaunchQueue, RelaunchRequest
from spotline.adapters.training_jobs import JobAlreadyExists, JobRequestRejected, TrainingJobs
from spotline.domain.policy import RunPolicy
from spotline.domain.requests import request_for_attempt
from spotline.domain.retry import QUOTA_RETRY_LIMIT, Cap, Rung, quota_backoff_s
from spotline.domain.settings import Settings
from spotline.domain.states import AttemptStatus, RunStatus
from spotline.domain.timefmt import iso_utc
from spotline.ledger.records import Attempt, Run
from spotline.ledger.runs import AttemptExists, RunLedger, TransitionRefused
from spotline.runs.publish import RunPublisher

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RelaunchOutcome:
    """launched, deferred, duplicate, ignored, cancelled or failed."""

    action: str
    run_id: str
    attempt: int
    job_name: str | None = None
    reason: str = ""


@dataclass
class Relauncher:
    settings: Settings
    _: KW_ONLY
    ledger: RunLedger
    jobs: TrainingJobs
    relaunch_queue: RelaunchQueue
    publisher: RunPublisher
    clock: Callable[[], float] = time.time

    def relaunch(self, request: RelaunchRequest) -> RelaunchOutcome:
        run_id, attempt = request.run_id, request.attempt
        now = self.clock()
        if request.not_before > now + 1:
            self.relaunch_queue.send(run_id, attempt, not_before=request.not_before, now=now)
            return RelaunchOutcome(
                "deferred", run_id, attempt, reason=f"not before {iso_utc(request.not_before)}"
            )
        run = self.ledger.get_run(run_id)
        if run is None:
            return RelaunchOutcome("ignored", run_id, attempt, reason="no such run")
        if run.attempt >= attempt:
            return RelaunchOutcome(
                "duplicate", run_id, attempt, reason=f"attempt {run.attempt} already launched"
            )
        waiting = run.next
        if run.status != RunStatus.RETRYING or waiting is None or waiting.attempt != attempt:
            return RelaunchOutcome(
                "ignored", run_id, attempt, reason=f"run is {run.status}, not waiting for {attempt}"
            )
        if run.policy is None or run.first_request is None:
            raise RuntimeError(f"run {run_id} waits for attempt {attempt} without its launch record")

        rung = Rung(waiting.instance_type, waiting.spot)
        job_request = request_for_attempt(
            run.first_request,
            job_prefix=self.settings.job_prefix,
            run_id=run_id,
            attempt=attempt,
            rung=rung,
            max_wait=run.policy.max_wait_s,
        )
        name = str(job_request["TrainingJobName"])
        if run.cancel_reason is not None and not self.jobs.exists(name):
            return self._cancelled(run, attempt)
        try:  # from here a cancel waits for this relaunch: no job is created for a cancelled run
            self.ledger.claim_relaunch(run_id, attempt, now=now)
        except TransitionRefused:
            current = self.ledger.get_run(run_id)
            if current is not None and current.cancel_reason is not None and not self.jobs.exists(name):
                return self._cancelled(current, attempt)
            if current is None or current.status != RunStatus.RETRYING:
                return RelaunchOutcome("ignored", run_id, attempt, reason="the run moved on")
        with contextlib.suppress(AttemptExists):  # an earlier delivery got this far
            self.ledger.record_attempt(
                Attempt(
                    run_id=run_id,
                    attempt=attempt,
                    job_name=name,
                    instance_type=rung.instance_type,
                    spot=rung.spot,
                    status=AttemptStatus.LAUNCHING,
                )
            )
        try:
            self.jobs.create(job_request)
        except JobAlreadyExists:
            logger.info("job %s already exists: launched by an earlier delivery", name)
        except JobRequestRejected as e:
            if e.code == "ResourceLimitExceeded":
                return self._quota_deferral(run, run.policy, attempt, str(e))
            self.ledger.attempt_refused(run_id, attempt, str(e))
            self.publisher.fail_waiting_run(run, f"SageMaker refused attempt {attempt}: {e}", None)
            return RelaunchOutcome("failed", run_id, attempt, name, str(e))

        now = self.clock()
        self.ledger.attempt_launched(run_id, attempt, now=now)
        try:
            self.ledger.mark_running(
                run_id, attempt=attempt, now=now, expected=RunStatus.RETRYING, expected_attempt=attempt - 1
            )
        except TransitionRefused:
            logger.info("run %s already moved on from attempt %d", run_id, attempt - 1)
        logger.info(
            "relaunched %s on %s (spot=%s)",
            name,
            rung.instance_type,
            rung.spot,
            extra={"run_id": run_id, "attempt": attempt},
        )
        return RelaunchOutcome("launched", run_id, attempt, name)

    def _cancelled(self, run: Run, attempt: int) -> RelaunchOutcome:
        """A person cancelled the run while it waited, and its next job does not exist: settle it."""
        reason = f"cancelled: {run.cancel_reason}"
        self.publisher.cancel_waiting_run(run, reason, unless_relaunching=False)
        return RelaunchOutcome("cancelled", run.run_id, attempt, reason=reason)

    def _quota_deferral(self, run: Run, policy: RunPolicy, attempt: int, reason: str) -> RelaunchOutcome:
        """CreateTrainingJob hit a quota: the same attempt waits longer (no attempt is used)."""
        run_id = run.run_id
        hits = run.create_quota_hits + 1
        if hits > QUOTA_RETRY_LIMIT:
            self.publisher.fail_waiting_run(run, f"{Cap.QUOTA} reached: {reason}", Cap.QUOTA.value)
            return RelaunchOutcome("failed", run_id, attempt, reason=reason)
        now = self.clock()
        not_before = now + quota_backoff_s(policy, hits - 1, run_id=run_id, attempt=attempt)
        try:
            self.ledger.defer_for_quota(
                run_id, attempt=attempt, hits=hits, not_before=int(not_before), now=now
            )
        except TransitionRefused:
            return RelaunchOutcome("ignored", run_id, attempt, reason="the run moved on")
        self.relaunch_queue.send(run_id, attempt, not_before=not_before, now=now)
        return RelaunchOutcome("deferred", run_id, attempt, reason=reason)
