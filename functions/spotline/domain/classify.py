"""Why a training job ended, and what spotline does about it: the one classification table.

A terminal job is matched against :data:`RULES` top to bottom; the first row whose status,
secondary status and failure-reason prefix all match decides. ``None`` in a column matches
anything. The same rows are rendered for people in ``docs/recovery.md`` (see
:func:`markdown_table`), so the documentation cannot drift from the code.

Failure reasons are SageMaker's ``FailureReason`` text, e.g. ``CapacityError: Unable to
provision requested ML compute capacity. Please retry using a different ML instance type.``;
they are only ever compared here, by prefix, never elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

TERMINAL_JOB_STATUSES = frozenset({"Completed", "Failed", "Stopped"})


class Outcome(StrEnum):
    """What happened to the attempt."""

    COMPLETED = "COMPLETED"
    SPOT_UNAVAILABLE = "SPOT_UNAVAILABLE"  # no capacity, or interrupted and not resumed in time
    PLATFORM_ERROR = "PLATFORM_ERROR"  # SageMaker's own internal error
    QUOTA = "QUOTA"  # an account limit
    USER_ERROR = "USER_ERROR"  # the user's code, data or configuration
    MAX_RUNTIME = "MAX_RUNTIME"  # the attempt used its whole max_runtime
    STOPPED_BY_USER = "STOPPED_BY_USER"
    UNKNOWN_FAILURE = "UNKNOWN_FAILURE"


class Action(StrEnum):
    """What spotline does next."""

    PUBLISH = "publish"
    RELAUNCH_NEXT_RUNG = "relaunch on the next rung"
    RELAUNCH_SAME_THEN_NEXT = "relaunch on the same rung once, then the next rung"
    RELAUNCH_SAME_RUNG = "relaunch on the same rung"
    RELAUNCH_LATER = "relaunch later (quota backoff)"
    RELAUNCH_IF_CONTINUING = "relaunch on the same rung if policy.continue_after_max_runtime"
    ALERT = "fail the run and alert"
    CANCEL = "cancel the run"


@dataclass(frozen=True)
class Rule:
    status: str
    secondary: str | None
    reason_prefix: str | None
    outcome: Outcome
    action: Action
    why: str

    def matches(self, status: str, secondary: str, reason: str) -> bool:
        if status != self.status:
            return False
        if self.secondary is not None and secondary != self.secondary:
            return False
        return self.reason_prefix is None or reason.strip().lower().startswith(self.reason_prefix.lower())


_SPOT = Outcome.SPOT_UNAVAILABLE
_NEXT = Action.RELAUNCH_NEXT_RUNG
_AGAIN = Action.RELAUNCH_SAME_THEN_NEXT
_NO_CAPACITY = "no capacity for this instance type; SageMaker says to try another"
_INTERRUPTED = "a Spot interruption the job could not ride out"

# fmt: off
RULES: tuple[Rule, ...] = (
    Rule("Completed", None, None, Outcome.COMPLETED, Action.PUBLISH, "the job finished"),
    Rule("Stopped", "MaxWaitTimeExceeded", None, _SPOT, _AGAIN, "no Spot capacity (back) within max_wait"),
    Rule("Stopped", "Interrupted", None, _SPOT, _AGAIN, _INTERRUPTED),
    Rule("Failed", "Interrupted", None, _SPOT, _AGAIN, _INTERRUPTED),
    Rule("Stopped", "MaxRuntimeExceeded", None, Outcome.MAX_RUNTIME, Action.RELAUNCH_IF_CONTINUING,
         "the attempt used all of max_runtime"),
    Rule("Stopped", None, None, Outcome.STOPPED_BY_USER, Action.CANCEL, "someone called StopTrainingJob"),
    Rule("Failed", None, "CapacityError", _SPOT, _NEXT, _NO_CAPACITY),
    Rule("Failed", None, "InsufficientCapacityError", _SPOT, _NEXT, _NO_CAPACITY),
    Rule("Failed", None, "EC2InsufficientCapacityError", _SPOT, _NEXT, _NO_CAPACITY),
    Rule("Failed", None, "Insufficient capacity", _SPOT, _NEXT, _NO_CAPACITY),
    Rule("Failed", None, "InternalServerError", Outcome.PLATFORM_ERROR, Action.RELAUNCH_SAME_RUNG,
         "SageMaker's internal error; the instance type is not at fault"),
    Rule("Failed", None, "ResourceLimitExceeded", Outcome.QUOTA, Action.RELAUNCH_LATER,
         "an account quota; waits longer and does not count against max_attempts"),
    Rule("Failed", None, "AlgorithmError", Outcome.USER_ERROR, Action.ALERT,
         "the training code failed; a relaunch would fail the same way"),
    Rule("Failed", None, "ClientError", Outcome.USER_ERROR, Action.ALERT,
         "bad input: data, channels, role or config"),
    Rule("Failed", None, None, Outcome.UNKNOWN_FAILURE, Action.ALERT,
         "an unrecognised failure: not retried blindly, the reason is in the alert"),
)
# fmt: on


def classify(status: str, secondary: str = "", reason: str = "") -> Rule:
    """The first rule matching a terminal job; ValueError for a job that has not ended."""
    if status not in TERMINAL_JOB_STATUSES:
        raise ValueError(f"training job status {status!r} is not terminal")
    for rule in RULES:
        if rule.matches(status, secondary or "", reason or ""):
            return rule
    raise AssertionError(
        f"no rule for {status}/{secondary}"
    )  # the Failed/Stopped catch-alls make this unreachable


def markdown_table() -> str:
    """:data:`RULES` as the Markdown table in ``docs/recovery.md``."""
    lines = [
        "| # | Status | Secondary status | Failure reason starts with | Outcome | Action | Why |",
        "|---|--------|------------------|----------------------------|---------|--------|-----|",
    ]
    for i, r in enumerate(RULES, 1):
        secondary = f"`{r.secondary}`" if r.secondary else "any"
        prefix = f"`{r.reason_prefix}`" if r.reason_prefix else "any"
        lines.append(f"| {i} | `{r.status}` | {secondary} | {prefix} | {r.outcome} | {r.action} | {r.why} |")
    return "\n".join(lines) + "\n"
