"""How far a run got, from the checkpoint pointer its container leaves, and what that says.

spotline's container writes a ``latest`` pointer next to its checkpoints (one line naming the
newest, ``model_00000160.pt``); SageMaker syncs the checkpoint directory to the run's
``CheckpointConfig.S3Uri``. After each attempt the job-state function reads that pointer
(:data:`MAX_POINTER_BYTES` at most) and records the iteration the attempt ended at; the
attempt started where the one before it ended (a run's first attempt at 0: its checkpoint
prefix is new). An image that writes no pointer leaves both unknown (None), and nothing below
acts on an unknown.

* An attempt **should have checkpointed** when it trained longer than the checkpoint period plus
  :data:`STARTUP_ALLOWANCE_S` (downloads, the image cache, building the model come first).
* Such an attempt that left no newer checkpoint in S3 means **checkpoints are not reaching S3**
  (a role that cannot write the prefix, a container writing elsewhere): one alert per run.
* When the **last two relaunches** that should have checkpointed both did not, the run makes no
  progress and stops (:func:`no_progress`) instead of paying for more of the same.
* The **work lost** to an interruption is the iterations between the checkpoint left in S3 and
  the iteration the job had reached (its last ``train/iteration`` metric), when both are known.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from spotline.domain.attempts import AttemptFacts

POINTER = "latest"
CHECKPOINT_NAME = re.compile(r"model_(\d{8,})\.pt")
MAX_POINTER_BYTES = 1024
STARTUP_ALLOWANCE_S = 600
NO_PROGRESS_RELAUNCHES = 2


def pointer_key(checkpoint_prefix: str) -> str:
    """The pointer's key under a run's checkpoint prefix (``runs/<id>/checkpoints/``)."""
    folder = checkpoint_prefix.strip("/")
    return f"{folder}/{POINTER}" if folder else POINTER


def pointed_checkpoint(data: bytes) -> str | None:
    """The checkpoint file a pointer's bytes name, or None for anything but one such name."""
    try:
        name = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    return name if CHECKPOINT_NAME.fullmatch(name) else None


def iteration_of(checkpoint: str) -> int:
    """``model_00000160.pt`` -> 160."""
    match = CHECKPOINT_NAME.fullmatch(checkpoint)
    if match is None:
        raise ValueError(f"not a checkpoint file name: {checkpoint!r}")
    return int(match.group(1))


def reached_iteration(final_metrics: Mapping[str, float], metric: str) -> int | None:
    """The iteration a job had reached, from its last value of ``metric`` (None if it reports none)."""
    value = final_metrics.get(metric)
    if value is None or not value >= 0 or value >= 2**53:  # NaN, negative, beyond exact floats
        return None
    return int(value)


def made_progress(start: int | None, end: int | None) -> bool | None:
    """Whether the checkpoint in S3 moved past where the attempt started (None: not known)."""
    if end is None:
        return None
    return start is None or end > start


def checkpoint_due(training_s: int, period_s: int | None) -> bool:
    """Whether an attempt trained long enough that it should have written a checkpoint."""
    return period_s is not None and period_s > 0 and training_s > period_s + STARTUP_ALLOWANCE_S


def checkpoints_missing(attempt: AttemptFacts, period_s: int | None, *, pointer_expected: bool) -> bool:
    """The attempt should have checkpointed and S3 holds nothing newer than where it started.

    No pointer at all counts only when the run's image is known to write one (``pointer_expected``).
    """
    if not checkpoint_due(attempt.training_s, period_s):
        return False
    progressed = made_progress(attempt.start_iteration, attempt.end_iteration)
    if progressed is None:
        return pointer_expected
    return not progressed


def no_progress(
    attempts: Sequence[AttemptFacts], period_s: int | None, *, pointer_expected: bool
) -> str | None:
    """Why the run should stop, when its last relaunches that should have checkpointed did not."""
    due = [a for a in attempts if a.attempt > 1 and checkpoint_due(a.training_s, period_s)]
    last = sorted(due, key=lambda a: a.attempt)[-NO_PROGRESS_RELAUNCHES:]
    if len(last) < NO_PROGRESS_RELAUNCHES:
        return None
    if not all(checkpoints_missing(a, period_s, pointer_expected=pointer_expected) for a in last):
        return None
    where = ", ".join(
        f"attempt {a.attempt} ({a.training_s} s, at iteration {_shown(a.end_iteration)})" for a in last
    )
    return f"the last {len(last)} relaunches left no newer checkpoint: {where}"


def work_lost(reached: int | None, checkpointed: int | None) -> int | None:
    """Iterations done but not in the checkpoint left in S3 (None when either is unknown)."""
    if reached is None or checkpointed is None:
        return None
    return max(0, reached - checkpointed)


def _shown(iteration: int | None) -> Any:
    return "unknown" if iteration is None else iteration
