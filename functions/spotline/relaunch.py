"""Relaunching a run from its checkpoints, after its backoff, without a Lambda ever sleeping.

The job-state function puts ``{run_id, attempt, not_before}`` on the SQS delay queue with a
delay of at most 900 seconds (SQS's limit). The relaunch function receives it; if
``not_before`` is still ahead it puts the message back with the remaining delay, so waits of
hours cost a few messages, not billed sleep. When the time has come it builds attempt N from
the run's first request (same ``CheckpointConfig.S3Uri``, so the container resumes; the next
deterministic name ``…-aNN``; the planned rung) and creates it. A job name already taken means a
previous delivery launched it. A quota refusal at CreateTrainingJob waits longer and does not
use an attempt.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from spotline import aws
from spotline.jobspec import Rung, request_for_attempt
from spotline.ledger import AttemptExists, RunLedger, TransitionRefused
from spotline.ledger.runs import RUN_SK, run_pk
from spotline.ledger.table import ConditionFailed
from spotline.policy import RunPolicy
from spotline.retry import QUOTA_RETRY_LIMIT, Cap, quota_backoff_s
from spotline.settings import Settings
from spotline.states import AttemptStatus, RunStatus
from spotline.timefmt import iso_utc
from spotline.training_jobs import JobAlreadyExists, JobRequestRejected, TrainingJobs

logger = logging.getLogger(__name__)

MAX_SQS_DELAY_S = 900


class RelaunchMessageError(ValueError):
    """A queue message that is not ``{run_id, attempt, not_before}``; retrying cannot fix it."""


@dataclass(frozen=True)
class RelaunchRequest:
    run_id: str
    attempt: int
    not_before: float

    @classmethod
    def from_body(cls, body: str) -> RelaunchRequest:
        try:
            data = json.loads(body)
            return cls(str(data["run_id"]), int(data["attempt"]), float(data["not_before"]))
        except (ValueError, KeyError, TypeError) as e:
            raise RelaunchMessageError(f"unreadable relaunch message: {e}") from e


class RelaunchQueue:
    """The SQS delay queue the relaunch function consumes."""

    def __init__(self, url: str | None, sqs: Any | None = None) -> None:
        self.url = url
        self._sqs = sqs

    @property
    def sqs(self) -> Any:
        if self._sqs is None:
            self._sqs = aws.client("sqs")
        return self._sqs

    def send(self, run_id: str, attempt: int, *, not_before: float, now: float) -> int:
        """Enqueue the relaunch; returns the delay used (the rest of a longer wait is re-enqueued)."""
        if not self.url:
            raise RuntimeError(
                "SPOTLINE_RELAUNCH_QUEUE_URL is not set: this function cannot schedule relaunches"
            )
        delay = max(0, min(MAX_SQS_DELAY_S, math.ceil(not_before - now)))
        self.sqs.send_message(
            QueueUrl=self.url,
            MessageBody=json.dumps({"run_id": run_id, "attempt": attempt, "not_before": not_before}),
            DelaySeconds=delay,
        )
        return delay


@dataclass(frozen=True)
class RelaunchOutcome:
    """launched, deferred, duplicate, ignored or failed."""

    action: str
    run_id: str
    attempt: int
    job_name: str | None = None
    reason: str = ""


class Relauncher:
    def __init__(
        self,
        settings: Settings,
        *,
        ledger: RunLedger,
        jobs: TrainingJobs,
        queue: RelaunchQueue,
        finish_failed: Callable[[Mapping[str, Any], str, str], Any],
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``finish_failed(run, reason, cap)`` settles a RETRYING run as FAILED and alerts."""
        self.settings = settings
        self.ledger = ledger
        self.jobs = jobs
        self.queue = queue
        self.finish_failed = finish_failed
        self.clock = clock

    def relaunch(self, request: RelaunchRequest) -> RelaunchOutcome:
        run_id, attempt = request.run_id, request.attempt
        now = self.clock()
        if request.not_before > now + 1:
            self.queue.send(run_id, attempt, not_before=request.not_before, now=now)
            return RelaunchOutcome(
                "deferred", run_id, attempt, reason=f"not before {iso_utc(request.not_before)}"
            )
        run = self.ledger.get_run(run_id)
        if run is None:
            return RelaunchOutcome("ignored", run_id, attempt, reason="no such run")
        status = RunStatus(run["status"])
        if int(run.get("attempt", 0)) >= attempt:
            return RelaunchOutcome(
                "duplicate", run_id, attempt, reason=f"attempt {run['attempt']} already launched"
            )
        if status != RunStatus.RETRYING or int(run.get("next_attempt", 0)) != attempt:
            return RelaunchOutcome(
                "ignored", run_id, attempt, reason=f"run is {status}, not waiting for {attempt}"
            )

        policy = RunPolicy.from_item(run["policy"])
        rung = Rung(str(run["next_instance_type"]), bool(run["next_spot"]))
        job_request = request_for_attempt(
            run["first_request"],
            job_prefix=self.settings.job_prefix,
            run_id=run_id,
            attempt=attempt,
            rung=rung,
            max_wait=policy.max_wait_s,
        )
        name = str(job_request["TrainingJobName"])
        with contextlib.suppress(AttemptExists):  # an earlier delivery got this far
            self.ledger.record_attempt(
                run_id,
                attempt,
                {
                    "job_name": name,
                    "instance_type": rung.instance_type,
                    "spot": rung.spot,
                    "status": AttemptStatus.LAUNCHING.value,
                },
            )
        try:
            self.jobs.create(job_request)
        except JobAlreadyExists:
            logger.info("job %s already exists: launched by an earlier delivery", name)
        except JobRequestRejected as e:
            if e.code == "ResourceLimitExceeded":
                return self._quota_deferral(run, policy, attempt, str(e))
            self.ledger.update_attempt(
                run_id, attempt, {"status": AttemptStatus.FAILED.value, "failure_reason": str(e)}
            )
            self.finish_failed(run, f"SageMaker refused attempt {attempt}: {e}", "")
            return RelaunchOutcome("failed", run_id, attempt, name, str(e))

        now = self.clock()
        self.ledger.update_attempt(
            run_id, attempt, {"status": AttemptStatus.IN_PROGRESS.value, "launched_at": iso_utc(now)}
        )
        try:
            self.ledger.transition(
                run_id,
                RunStatus.RUNNING,
                now=now,
                expected=[RunStatus.RETRYING],
                expected_attempt=attempt - 1,
                attrs={"attempt": attempt},
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

    def _quota_deferral(
        self, run: Mapping[str, Any], policy: RunPolicy, attempt: int, reason: str
    ) -> RelaunchOutcome:
        """CreateTrainingJob hit a quota: the same attempt waits longer (no attempt is used)."""
        run_id = str(run["run_id"])
        hits = int(run.get("create_quota_hits", 0)) + 1
        if hits > QUOTA_RETRY_LIMIT:
            self.finish_failed(run, f"{Cap.QUOTA} reached: {reason}", Cap.QUOTA.value)
            return RelaunchOutcome("failed", run_id, attempt, reason=reason)
        now = self.clock()
        not_before = now + quota_backoff_s(policy, hits - 1, run_id=run_id, attempt=attempt)
        try:
            self.ledger.table.update(
                run_pk(run_id),
                RUN_SK,
                {"create_quota_hits": hits, "not_before": int(not_before)},
                condition="#st = :retrying AND next_attempt = :n",
                condition_values={"#st": "status", ":retrying": RunStatus.RETRYING.value, ":n": attempt},
            )
        except ConditionFailed:
            return RelaunchOutcome("ignored", run_id, attempt, reason="the run moved on")
        self.queue.send(run_id, attempt, not_before=not_before, now=now)
        return RelaunchOutcome("deferred", run_id, attempt, reason=reason)
