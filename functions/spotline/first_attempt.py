"""Starting a run's first job, the same way for training and inference runs.

Every step may be repeated by a retried or duplicated invocation: the attempt is recorded once,
a job name already taken means an earlier invocation created the job, and the run moves
PENDING -> RUNNING with one conditional write.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from spotline.ledger import AttemptExists, RunLedger, TransitionRefused
from spotline.policy import RunPolicy
from spotline.states import AttemptStatus, RunStatus
from spotline.timefmt import iso_utc
from spotline.training_jobs import JobAlreadyExists, TrainingJobs

logger = logging.getLogger(__name__)


def start_first_attempt(
    *,
    ledger: RunLedger,
    jobs: TrainingJobs,
    run_id: str,
    request: Mapping[str, Any],
    policy: RunPolicy,
    config_key: str | None,
    clock: Callable[[], float],
) -> str:
    """Create attempt 1's job and mark the run RUNNING; returns the job name.

    :class:`spotline.training_jobs.JobRequestRejected` is left to the caller, which knows what a
    refusal means for its kind of run.
    """
    name = str(request["TrainingJobName"])
    resources = request["ResourceConfig"]
    with contextlib.suppress(AttemptExists):  # an earlier invocation got this far
        ledger.record_attempt(
            run_id,
            1,
            {
                "job_name": name,
                "instance_type": resources["InstanceType"],
                "spot": bool(request["EnableManagedSpotTraining"]),
                "status": AttemptStatus.LAUNCHING.value,
            },
        )
    try:
        jobs.create(request)
    except JobAlreadyExists:
        logger.info("job %s already exists: launched by an earlier invocation", name)
    now = clock()
    ledger.update_attempt(run_id, 1, {"status": AttemptStatus.IN_PROGRESS.value, "launched_at": iso_utc(now)})
    try:
        ledger.transition(
            run_id,
            RunStatus.RUNNING,
            now=now,
            expected=[RunStatus.PENDING],
            attrs={
                "attempt": 1,
                "policy": policy.to_item(),
                "first_request": dict(request),
                **({"config_key": config_key} if config_key else {}),
            },
        )
    except TransitionRefused:
        logger.info("run %s already moved on", run_id)
    return name


def fail_first_attempt(
    *, ledger: RunLedger, run_id: str, reason: str, now: float, alert: Callable[[], object]
) -> None:
    """SageMaker refused attempt 1 itself: record it, alert once, then settle the run FAILED.

    The run is settled only once the alert is out: a failed alert leaves the run PENDING (and
    the notice unclaimed), so the retry sends both.
    """
    ledger.update_attempt(run_id, 1, {"status": AttemptStatus.FAILED.value, "failure_reason": reason})
    ledger.send_notice_once(run_id, "failed", now, alert)
    with contextlib.suppress(TransitionRefused):
        ledger.transition(
            run_id, RunStatus.FAILED, now=now, expected=[RunStatus.PENDING], attrs={"errors": [reason]}
        )
