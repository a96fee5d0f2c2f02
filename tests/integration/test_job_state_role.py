"""The job-state function only describes jobs: its role may not create them or pass the job role."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from spotline.adapters.training_jobs import TrainingJobs
from spotline_local.template import load_template
from tests.support.aws_account import Account
from tests.support.events import load_event
from tests.support.recovery import Recovery, build_recovery, end_job, rail_config

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


class _Context:
    function_name = "JobStateFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:eu-west-3:123456789012:function:JobStateFunction"
    aws_request_id = "5f1e4f5a-0000-4000-8000-00000000a001"


def _actions(role_id: str) -> set[str]:
    role = load_template(TEMPLATE)["Resources"][role_id]["Properties"]
    actions: set[str] = set()
    for policy in role.get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            action = statement["Action"]
            actions.update([action] if isinstance(action, str) else action)
    return actions


def test_job_state_role_cannot_start_jobs() -> None:
    actions = _actions("JobStateFunctionRole")
    assert "sagemaker:DescribeTrainingJob" in actions
    starts_jobs = {"sagemaker:CreateTrainingJob", "sagemaker:AddTags", "iam:PassRole", "kms:CreateGrant"}
    assert not actions & starts_jobs
    # the function that does relaunch keeps what it needs
    assert {"sagemaker:CreateTrainingJob", "iam:PassRole"} <= _actions("RelaunchFunctionRole")


@pytest.mark.parametrize(
    ("sample", "status", "secondary", "reason", "action"),
    [
        ("sagemaker_job_completed", "Completed", "Completed", "", "succeeded"),
        ("sagemaker_job_stopped_max_wait", "Stopped", "MaxWaitTimeExceeded", "", "retrying"),
        ("sagemaker_job_failed_user_error", "Failed", "Failed", "AlgorithmError: x", "failed"),
    ],
)
def test_job_state_handler_never_creates_a_job(
    account: Account,
    monkeypatch: pytest.MonkeyPatch,
    sample: str,
    status: str,
    secondary: str,
    reason: str,
    action: str,
) -> None:
    recovery: Recovery = build_recovery(account, monkeypatch)
    run_id = recovery.drop_config(rail_config())
    name = f"spotline-{run_id}-a01"
    end_job(name, status, secondary, reason, training_s=600, billable_s=200, metrics={"val/mAP50": 0.7})

    def refuse(self: TrainingJobs, request: Mapping[str, Any]) -> str:
        raise AssertionError(f"the job-state function created {request['TrainingJobName']}")

    monkeypatch.setattr(TrainingJobs, "create", refuse)
    event = load_event(sample)
    event["detail"]["TrainingJobName"] = name
    module = importlib.reload(importlib.import_module("handlers.job_state"))
    assert module.handler(event, _Context())["action"] == action
