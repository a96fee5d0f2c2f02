"""The job-state and relaunch Lambda handlers on the sample events in events/ (real AWS shapes)."""

from __future__ import annotations

import importlib
import json
from types import ModuleType
from typing import Any

import pytest

from tests.support.events import load_event
from tests.support.recovery import Recovery, end_job, rail_config


class _Context:
    function_name = "JobStateFunction"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-west-3:123456789012:function:JobStateFunction"
    aws_request_id = "5f1e4f5a-0000-4000-8000-000000000002"


def handler_module(name: str) -> ModuleType:
    """The handler module as a cold start loads it (settings read from the environment)."""
    return importlib.reload(importlib.import_module(f"handlers.{name}"))


# (sample file, DescribeTrainingJob's status, secondary status, reason, expected action)
SAMPLES = [
    ("sagemaker_job_completed", "Completed", "Completed", "", "succeeded"),
    ("sagemaker_job_stopped_max_wait", "Stopped", "MaxWaitTimeExceeded", "", "retrying"),
    (
        "sagemaker_job_failed_capacity",
        "Failed",
        "Failed",
        "CapacityError: Unable to provision requested ML "
        "compute capacity. Please retry using a different ML instance type.",
        "retrying",
    ),
    (
        "sagemaker_job_failed_user_error",
        "Failed",
        "Failed",
        "AlgorithmError: ExecuteUserScriptError:",
        "failed",
    ),
]


@pytest.mark.parametrize(("sample", "status", "secondary", "reason", "action"), SAMPLES)
def test_job_state_handler_on_sample_events(
    recovery: Recovery, sample: str, status: str, secondary: str, reason: str, action: str
) -> None:
    run_id = recovery.drop_config(rail_config())
    name = f"spotline-{run_id}-a01"
    end_job(name, status, secondary, reason, training_s=600, billable_s=200, metrics={"val/mAP50": 0.7})
    event = load_event(sample)
    event["detail"]["TrainingJobName"] = name
    if event["detail"]["Tags"]:  # the job's own tags, as SageMaker sends them (a list in some shapes)
        tags = {"spotline:run-id": run_id, "spotline:attempt": "1", "spotline:kind": "training"}
        event["detail"]["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    module = handler_module("job_state")
    result = module.handler(event, _Context())
    assert result["action"] == action
    assert result["run_id"] == run_id
    assert module.handler(event, _Context())["action"] == "duplicate"
    # What the two deliveries left: one message, at most one relaunch, no second job.
    [message] = recovery.account.inbox.messages()
    assert message["MessageAttributes"]["run_id"]["Value"] == run_id
    assert message["MessageAttributes"]["status"]["Value"] == action.upper()
    assert len(recovery.queued_relaunches()) == (1 if action == "retrying" else 0)
    assert recovery.job_names() == [name]
    run = recovery.ledger.get_run(run_id)
    assert run is not None and run.status == action.upper()


def test_job_state_handler_drops_a_malformed_event(recovery: Recovery) -> None:
    event = load_event("sagemaker_job_completed")
    del event["detail"]["TrainingJobName"]
    assert handler_module("job_state").handler(event, _Context())["action"] == "ignored"


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"059f36b4-87a3-44ab-83d2-66197524812{i}",
                "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1545082649183",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1545082649185",
                },
                "messageAttributes": {},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-3:123456789012:spotline-relaunch",
                "awsRegion": "eu-west-3",
            }
            for i, body in enumerate(bodies)
        ]
    }


def test_relaunch_handler_launches_the_next_attempt(recovery: Recovery) -> None:
    run_id = recovery.drop_config(rail_config())
    recovery.end(f"spotline-{run_id}-a01", "Stopped", "MaxWaitTimeExceeded", training_s=60, billable_s=20)
    [(body, _delay)] = recovery.queued_relaunches()
    body["not_before"] = 0  # its time has come
    result = handler_module("relaunch").handler(sqs_event(json.dumps(body), "not json"), _Context())
    assert result == {"batchItemFailures": []}  # an unreadable message is dropped, not retried forever
    assert recovery.job(f"spotline-{run_id}-a02")["CheckpointConfig"]["S3Uri"].endswith(
        f"runs/{run_id}/checkpoints/"
    )
    run = recovery.ledger.get_run(run_id)
    assert run is not None and run.attempt == 2
