"""Starting a run's first job, the same way for training and inference runs.

Every step may be repeated by a retried or duplicated invocation:

1. :meth:`FirstAttemptLauncher.claim` creates the run as PENDING holding a *launch lease*
   (a conditional put); a duplicate finds the run and stops, one that arrives while the lease is
   held and the job does not exist yet is told :class:`LaunchInProgress` (retry later), and one
   that arrives after the lease expired takes the launch over — a Lambda that timed out
   mid-launch never leaves a run stuck;
2. :meth:`FirstAttemptLauncher.start` records what the job is created with while the run is
   PENDING (so it is in the ledger before anything is paid for), records the attempt once,
   creates the job (a name already taken means an earlier invocation created it) and moves the
   run PENDING -> RUNNING with one conditional write.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any

from spotline.adapters.drop_bucket import DropBucket
from spotline.adapters.notifier import Notifier
from spotline.adapters.relaunch_queue import RelaunchQueue
from spotline.adapters.training_jobs import JobAlreadyExists, TrainingJobs
from spotline.domain.naming import job_name
from spotline.domain.policy import RunPolicy
from spotline.domain.retry import quota_backoff_s
from spotline.domain.settings import Settings
from spotline.domain.states import AttemptStatus, RunKind, RunStatus
from spotline.ledger.notices import Notices
from spotline.ledger.records import Attempt, InferencePart, NextAttempt, RunSource
from spotline.ledger.runs import AttemptExists, RunLedger, TransitionRefused
from spotline.ledger.table import UnstorableValue

logger = logging.getLogger(__name__)

# Longer than the functions' timeouts: a lease still held means its holder may still be working.
LAUNCH_LEASE_SECONDS = 300


class LaunchInProgress(Exception):
    """Another invocation holds this run's launch lease and its job does not exist yet: retry later."""


class LaunchNotRecordable(ValueError):
    """The ledger cannot hold what the first job would be created with; no job was created."""


@dataclass
class FirstAttemptLauncher:
    """What launching a run's first job needs, whatever the kind of run."""

    settings: Settings
    _: KW_ONLY
    ledger: RunLedger
    notices: Notices
    jobs: TrainingJobs
    notifier: Notifier
    bucket: DropBucket
    relaunch_queue: RelaunchQueue
    clock: Callable[[], float] = time.time

    def claim(
        self, run_id: str, *, kind: RunKind, source: RunSource, inference: InferencePart | None = None
    ) -> bool:
        """True if this invocation must launch the run; False if it is launched already.

        :class:`LaunchInProgress` if another invocation holds the lease and the job is not there yet.
        """
        now = self.clock()
        created = self.ledger.create_run(
            run_id, kind=kind, source=source, now=now, lease_seconds=LAUNCH_LEASE_SECONDS, inference=inference
        )
        if created is not None:
            return True
        run = self.ledger.get_run(run_id)
        if run is None or run.status != RunStatus.PENDING:
            return False
        if run.lease_until > now:
            if self.jobs.exists(job_name(self.settings.job_prefix, run_id, 1)):
                return False
            raise LaunchInProgress(f"run {run_id} is being launched by another invocation")
        if not self.ledger.take_over_launch(
            run_id, seen_lease_until=run.lease_until, now=now, lease_seconds=LAUNCH_LEASE_SECONDS
        ):
            raise LaunchInProgress(f"run {run_id}: another invocation took the launch over")
        logger.warning("taking over the unfinished launch of run %s", run_id, extra={"run_id": run_id})
        return True

    def start(
        self, run_id: str, request: Mapping[str, Any], *, policy: RunPolicy, config_key: str | None
    ) -> str:
        """Create attempt 1's job and mark the run RUNNING; returns the job name.

        :class:`spotline.adapters.training_jobs.JobRequestRejected` is left to the caller, which
        knows what a refusal means for its kind of run. :class:`LaunchNotRecordable` means
        nothing was created.
        """
        name = str(request["TrainingJobName"])
        ledger = self.ledger
        try:
            ledger.record_launch(
                run_id, policy=policy, first_request=request, config_key=config_key, now=self.clock()
            )
        except UnstorableValue as e:
            raise LaunchNotRecordable(str(e)) from e
        except TransitionRefused:
            logger.info("run %s already moved on: its first job is launched", run_id)
            return name
        resources = request["ResourceConfig"]
        attempt = Attempt(
            run_id=run_id,
            attempt=1,
            job_name=name,
            instance_type=str(resources["InstanceType"]),
            spot=bool(request["EnableManagedSpotTraining"]),
            status=AttemptStatus.LAUNCHING,
        )
        with contextlib.suppress(AttemptExists):  # an earlier invocation got this far
            ledger.record_attempt(attempt)
        try:
            self.jobs.create(request)
        except JobAlreadyExists:
            logger.info("job %s already exists: launched by an earlier invocation", name)
        now = self.clock()
        ledger.attempt_launched(run_id, 1, now=now)
        with contextlib.suppress(TransitionRefused):  # an earlier invocation got this far
            ledger.mark_running(run_id, attempt=1, now=now, expected=RunStatus.PENDING)
        return name

    def fail(self, run_id: str, reason: str, alert: Callable[[], object]) -> None:
        """SageMaker refused attempt 1 itself: record it, alert once, then settle the run FAILED.

        The run is settled only once the alert is out: a failed alert leaves the run PENDING (and
        the notice unclaimed), so the retry sends both.
        """
        now = self.clock()
        if self.ledger.get_attempt(run_id, 1) is not None:  # a tuning run records no attempt
            self.ledger.attempt_refused(run_id, 1, reason)
        self.notices.of_run(run_id).send_once("failed", alert, now=now)
        with contextlib.suppress(TransitionRefused):
            self.ledger.fail_launch(run_id, reason=reason, now=now)

    def wait_for_quota(self, run_id: str, policy: RunPolicy, reason: str) -> None:
        """An account quota refused attempt 1: the run waits on the relaunch queue like any retry.

        Quotas free up over minutes to hours, longer than an event's own retries last; the
        relaunch function retries with the quota backoff and stops at the quota retry cap.
        """
        now = self.clock()
        not_before = now + quota_backoff_s(policy, 0, run_id=run_id, attempt=1)
        self.ledger.mark_retrying(
            run_id,
            NextAttempt(
                attempt=1,
                instance_type=policy.ladder[0],
                spot=policy.spot,
                not_before=int(not_before),
                reason=reason,
            ),
            now=now,
            expected=RunStatus.PENDING,
            create_quota_hits=1,
        )
        self.relaunch_queue.send(run_id, 1, not_before=not_before, now=now)
        logger.warning("quota reached for run %s: first attempt deferred", run_id, extra={"reason": reason})

    def release(self, run_id: str) -> None:
        """This invocation failed: give the launch lease up so that the retry takes over at once."""
        self.ledger.release_launch(run_id, now=self.clock())
