"""Starting a run's first job, the same way for training and inference runs.

Every step may be repeated by a retried or duplicated invocation: what the job is created with
is recorded while the run is PENDING (so it is in the ledger before anything is paid for), the
attempt is recorded once, a job name already taken means an earlier invocation created the job,
and the run moves PENDING -> RUNNING with one conditional write.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from spotline.adapters.training_jobs import JobAlreadyExists, TrainingJobs
from spotline.domain.policy import RunPolicy
from spotline.domain.states import AttemptStatus, RunStatus
from spotline.ledger.notices import Notices
from spotline.ledger.records import Attempt
from spotline.ledger.runs import AttemptExists, RunLedger, TransitionRefused, run_pk
from spotline.ledger.table import UnstorableValue

logger = logging.getLogger(__name__)


class LaunchNotRecordable(ValueError):
    """The ledger cannot hold what the first job would be created with; no job was created."""


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

    :class:`spotline.adapters.training_jobs.JobRequestRejected` is left to the caller, which knows
    what a refusal means for its kind of run. :class:`LaunchNotRecordable` means nothing was created.
    """
    name = str(request["TrainingJobName"])
    try:
        ledger.record_launch(run_id, policy=policy, first_request=request, config_key=config_key, now=clock())
    except UnstorableValue as e:
        raise LaunchNotRecordable(str(e)) from e
    except TransitionRefused:
        logger.info("run %s already moved on: its first job is launched", run_id)
        return name
    resources = request["ResourceConfig"]
    with contextlib.suppress(AttemptExists):  # an earlier invocation got this far
        ledger.record_attempt(
            Attempt(
                run_id=run_id,
                attempt=1,
                job_name=name,
                instance_type=str(resources["InstanceType"]),
                spot=bool(request["EnableManagedSpotTraining"]),
                status=AttemptStatus.LAUNCHING,
            )
        )
    try:
        jobs.create(request)
    except JobAlreadyExists:
        logger.info("job %s already exists: launched by an earlier invocation", name)
    now = clock()
    ledger.attempt_launched(run_id, 1, now=now)
    try:
        ledger.mark_running(run_id, attempt=1, now=now, expected=RunStatus.PENDING)
    except TransitionRefused:
        logger.info("run %s already moved on", run_id)
    return name


def fail_first_attempt(
    *,
    ledger: RunLedger,
    notices: Notices,
    run_id: str,
    reason: str,
    now: float,
    alert: Callable[[], object],
) -> None:
    """SageMaker refused attempt 1 itself: record it, alert once, then settle the run FAILED.

    The run is settled only once the alert is out: a failed alert leaves the run PENDING (and
    the notice unclaimed), so the retry sends both.
    """
    ledger.attempt_refused(run_id, 1, reason)
    notices.send_once(run_pk(run_id), "failed", alert, now=now)
    with contextlib.suppress(TransitionRefused):
        ledger.fail_launch(run_id, reason=reason, now=now)
