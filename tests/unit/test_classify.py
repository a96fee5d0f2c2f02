"""Every row of the classification table, with failure reasons as SageMaker writes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from spotline.domain.classify import RULES, Action, Outcome, classify, markdown_table

CAPACITY = (
    "CapacityError: Unable to provision requested ML compute capacity. "
    "Please retry using a different ML instance type."
)
INSUFFICIENT = (
    "InsufficientCapacityError: Insufficient capacity for the requested instance type ml.g5.xlarge."
)
EC2_INSUFFICIENT = (
    "EC2InsufficientCapacityError: Instance type 'ml.g5.48xlarge' is temporarily unavailable in supported "
    "availability zones [euw1-az1]. Try again in a few minutes, or try a different instance type."
)
INSUFFICIENT_TEXT = "Insufficient capacity error from EC2 while launching instances, retrying!"
INTERNAL = "InternalServerError: We encountered an internal error. Please try again."
QUOTA = (
    "ResourceLimitExceeded: The account-level service limit 'ml.p3.2xlarge for training job usage' is 0 "
    "Instances, with current utilization of 0 Instances and a request delta of 1 Instances. Please contact "
    "AWS support to request an increase for this limit."
)
ALGORITHM = (
    'AlgorithmError: ExecuteUserScriptError:\nCommand "/usr/bin/python script.py --model_dir '
    's3://bucket/job/model"'
)
CLIENT = "ClientError: Data download failed:Insufficient disk space"
UNKNOWN = "Something we have never seen"

NEXT, AGAIN = Action.RELAUNCH_NEXT_RUNG, Action.RELAUNCH_SAME_THEN_NEXT
SPOT = Outcome.SPOT_UNAVAILABLE

# (row number in RULES, status, secondary status, failure reason, outcome, action)
CASES = [
    (1, "Completed", "Completed", "", Outcome.COMPLETED, Action.PUBLISH),
    (2, "Stopped", "MaxWaitTimeExceeded", "", SPOT, AGAIN),
    (3, "Stopped", "Interrupted", "", SPOT, AGAIN),
    (4, "Failed", "Interrupted", "", SPOT, AGAIN),
    (5, "Stopped", "MaxRuntimeExceeded", "", Outcome.MAX_RUNTIME, Action.RELAUNCH_IF_CONTINUING),
    (6, "Stopped", "Stopped", "", Outcome.STOPPED_BY_USER, Action.CANCEL),
    (7, "Failed", "Failed", CAPACITY, SPOT, NEXT),
    (8, "Failed", "Failed", INSUFFICIENT, SPOT, NEXT),
    (9, "Failed", "Failed", EC2_INSUFFICIENT, SPOT, NEXT),
    (10, "Failed", "Starting", INSUFFICIENT_TEXT, SPOT, NEXT),
    (11, "Failed", "Failed", INTERNAL, Outcome.PLATFORM_ERROR, Action.RELAUNCH_SAME_RUNG),
    (12, "Failed", "Failed", QUOTA, Outcome.QUOTA, Action.RELAUNCH_LATER),
    (13, "Failed", "Failed", ALGORITHM, Outcome.USER_ERROR, Action.ALERT),
    (14, "Failed", "Failed", CLIENT, Outcome.USER_ERROR, Action.ALERT),
    (15, "Failed", "Failed", UNKNOWN, Outcome.UNKNOWN_FAILURE, Action.ALERT),
]


@pytest.mark.parametrize(("row", "status", "secondary", "reason", "outcome", "action"), CASES)
def test_every_row(
    row: int, status: str, secondary: str, reason: str, outcome: Outcome, action: Action
) -> None:
    rule = classify(status, secondary, reason)
    assert rule is RULES[row - 1]
    assert (rule.outcome, rule.action) == (outcome, action)


def test_the_cases_cover_every_row() -> None:
    assert sorted(c[0] for c in CASES) == list(range(1, len(RULES) + 1))


def test_an_empty_reason_on_a_failure_is_unknown_not_a_user_error() -> None:
    assert classify("Failed", "Failed", "").outcome == Outcome.UNKNOWN_FAILURE


def test_a_job_still_running_is_refused() -> None:
    with pytest.raises(ValueError, match="not terminal"):
        classify("InProgress", "Training")


def test_the_documented_table_is_the_code_table() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "recovery.md").read_text(encoding="utf-8")
    assert markdown_table() in doc


def test_the_readme_shows_the_code_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme
