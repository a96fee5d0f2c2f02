"""Run and attempt states, the kinds of run, and the transitions a run may take.

```
            ┌──────────────────────────► REJECTED   (bad config, nothing launched)
            ├──────────────────────────► FAILED     (SageMaker refused the first job)
 PENDING ───┼──► RETRYING  (the first job waits for an account quota)
            │       ▲  │
            │       │  ├──────────────► FAILED     (caps reached, relaunch refused)
            │       │  └──────────────► CANCELLED  (stopped by a person while waiting)
            │       │  ▼
            └──► RUNNING ──────────────► SUCCEEDED
                    ├──────────────────► FAILED     (user error, caps reached)
                    └──────────────────► CANCELLED  (stopped by a person)
```
A run in a terminal state never changes again; every transition is a conditional write.
"""

from __future__ import annotations

from enum import StrEnum


class RunKind(StrEnum):
    TRAINING = "training"
    INFERENCE = "inference"
    TUNING = "tuning"  # a hyperparameter tuning job: the tuner runs the trials


class RunStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"


TERMINAL_RUN_STATES = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.REJECTED}
)

ALLOWED_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    # PENDING -> RETRYING: the first CreateTrainingJob hit an account quota and waits its turn.
    RunStatus.PENDING: frozenset(
        {RunStatus.RUNNING, RunStatus.RETRYING, RunStatus.REJECTED, RunStatus.FAILED}
    ),
    RunStatus.RUNNING: frozenset(
        {RunStatus.RETRYING, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}
    ),
    RunStatus.RETRYING: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELLED}),
}


class AttemptStatus(StrEnum):
    LAUNCHING = "LAUNCHING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    INTERRUPTED = "INTERRUPTED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"


class TrialStatus(StrEnum):
    """How a tuning run's trial ended, as its report tells it."""

    COMPLETED = "COMPLETED"
    STOPPED = "STOPPED"  # stopped early by the tuner, or with its tuning job
    LOST_TO_SPOT = "LOST_TO_SPOT"  # Spot capacity ended it; the tuner does not replace it
    FAILED = "FAILED"
