"""Jobs spotline did not launch: adopted when they carry its tags, left alone when they do not.

On moto: a job created with plain boto3 (named as the SageMaker SDK names jobs, timestamp and all)
with one ``spotline:adopt=true`` tag is interrupted; its first state-change event makes it a run,
which is relaunched from the job's checkpoints under spotline's own name and settled like any other.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from spotline.domain import layout
from spotline.domain.naming import run_id_for_job
from spotline.domain.requests import TAG_ADOPT, TAG_ATTEMPT, TAG_CONFIG, TAG_RUN_ID
from spotline.domain.states import RunStatus
from tests.support.aws_account import BUCKET, IMAGE_URI, ROLE_ARN
from tests.support.recovery import (
    INTERRUPTED,
    Recovery,
    end_job,
    inbox_by_status,
    job,
    state_change_event,
    train_channels,
)

SDK_NAME = "rail-legacy-2026-11-27-01-02-03-456"  # what sagemaker's _get_unique_name makes


def _create_elsewhere(
    recovery: Recovery,
    name: str,
    tags: dict[str, str],
    *,
    role: str = ROLE_ARN,
    checkpoints: bool = True,
) -> dict[str, Any]:
    """A training job created with plain boto3, not through the launch function."""
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": IMAGE_URI, "TrainingInputMode": "File"},
        "RoleArn": role,
        "HyperParameters": {"base_lr": "0.02"},
        "InputDataConfig": train_channels(),
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/runs/legacy/output/"},
        "ResourceConfig": {"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200},
        "EnableManagedSpotTraining": True,
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
    }
    if checkpoints:
        request["CheckpointConfig"] = {"S3Uri": f"s3://{BUCKET}/runs/legacy/checkpoints/"}
    recovery.account.sagemaker.create_training_job(**request)
    return request


def _end(recovery: Recovery, name: str, status: str, secondary: str = "", **seconds: int) -> Any:
    """The job ends; its state-change event carries its tags, as SageMaker's does."""
    end_job(name, status, secondary, **seconds)
    arn = recovery.job(name)["TrainingJobArn"]
    tags = recovery.account.sagemaker.list_tags(ResourceArn=arn)["Tags"]
    event = state_change_event(name, status, secondary)
    event["detail"]["Tags"] = {t["Key"]: t["Value"] for t in tags}
    return event


def test_a_job_launched_with_boto3_and_the_adopt_tag_is_recovered_after_an_interruption(
    recovery: Recovery,
) -> None:
    _create_elsewhere(recovery, SDK_NAME, {TAG_ADOPT: "true", "team": "rail"})
    run_id = run_id_for_job(SDK_NAME)

    event = _end(recovery, SDK_NAME, *INTERRUPTED, training_s=600, billable_s=180)
    first, again = recovery.deliver(event, times=2)
    assert (first.action, first.run_id, first.attempt, first.next_attempt) == ("retrying", run_id, 1, 2)
    assert again.action == "duplicate"

    run = recovery.ledger.get_run(run_id)
    assert run is not None and run.status == RunStatus.RETRYING
    assert run.source.key == SDK_NAME  # what people recognise it by
    assert run.policy is not None and run.policy.resumes  # it has a CheckpointConfig
    [attempt] = recovery.ledger.attempts(run_id)
    assert (attempt.job_name, attempt.billable_s) == (SDK_NAME, 180)

    # The relaunch is spotline's own job: its name, its run's tags, the adopted job's checkpoints.
    assert [o.action for o in recovery.run_relaunches(times=2)] == ["launched", "duplicate"]
    relaunched = recovery.job(job(run_id, 2))
    assert relaunched["CheckpointConfig"]["S3Uri"] == f"s3://{BUCKET}/runs/legacy/checkpoints/"
    assert relaunched["HyperParameters"] == {"base_lr": "0.02"}
    assert relaunched["RoleArn"] == ROLE_ARN
    tags = {
        t["Key"]: t["Value"]
        for t in recovery.account.sagemaker.list_tags(ResourceArn=relaunched["TrainingJobArn"])["Tags"]
    }
    assert (tags[TAG_RUN_ID], tags[TAG_ATTEMPT], tags["team"]) == (run_id, "2", "rail")
    assert TAG_ADOPT not in tags  # attempt 2 is the run's, not a second adoption

    [done] = recovery.deliver(_end(recovery, job(run_id, 2), "Completed", training_s=300, billable_s=90))
    assert done.action == "succeeded"
    run = recovery.ledger.get_run(run_id)
    assert run is not None and (run.status, run.attempt) == (RunStatus.SUCCEEDED, 2)
    report = recovery.report(run_id)
    assert [a["job_name"] for a in report["attempts"]] == [SDK_NAME, job(run_id, 2)]
    assert report["savings"]["billable_s"] == 270 and report["work_lost"] is None
    inbox = inbox_by_status(recovery.account.inbox.messages())
    assert sorted((k, len(v)) for k, v in inbox.items()) == [("RETRYING", 1), ("SUCCEEDED", 1)]
    assert recovery.job_names() == sorted([SDK_NAME, job(run_id, 2)])


@pytest.mark.parametrize("tags", [{}, {"team": "rail"}, {TAG_ADOPT: "no"}])
def test_a_job_without_spotline_tags_is_still_ignored(recovery: Recovery, tags: dict[str, str]) -> None:
    _create_elsewhere(recovery, SDK_NAME, tags)
    [outcome] = recovery.deliver(_end(recovery, SDK_NAME, *INTERRUPTED, training_s=60, billable_s=20))
    assert outcome.action == "ignored" and "not a spotline job" in outcome.reason
    assert recovery.ledger.get_run(run_id_for_job(SDK_NAME)) is None
    assert recovery.queued_relaunches() == []
    assert recovery.account.inbox.messages() == []


def test_a_tuning_trial_is_left_to_its_tuning_job(recovery: Recovery) -> None:
    """A trial carries its tuning job's tags; it is not a run of its own."""
    _create_elsewhere(recovery, "tune-rail-001-4f2a", {TAG_ADOPT: "true"})
    event = _end(recovery, "tune-rail-001-4f2a", *INTERRUPTED, training_s=60, billable_s=20)
    tuner = "arn:aws:sagemaker:eu-west-3:123456789012:hyper-parameter-tuning-job/tune"
    event["detail"]["TuningJobArn"] = tuner
    [outcome] = recovery.deliver(event)
    assert outcome.action == "ignored" and "trial" in outcome.reason
    assert recovery.ledger.get_run(run_id_for_job("tune-rail-001-4f2a")) is None
    assert recovery.queued_relaunches() == []


def test_an_adopted_job_takes_its_recovery_policy_from_the_config_it_names(recovery: Recovery) -> None:
    config = "job:\n  max_attempts: 1\n  channels: {train: datasets/rail/train/}\n"
    recovery.account.s3.put_object(Bucket=BUCKET, Key="adopt/legacy.yaml", Body=config.encode())
    _create_elsewhere(recovery, SDK_NAME, {TAG_ADOPT: "true", TAG_CONFIG: "adopt/legacy.yaml"})
    run_id = run_id_for_job(SDK_NAME)

    [outcome] = recovery.deliver(_end(recovery, SDK_NAME, *INTERRUPTED, training_s=60, billable_s=20))
    assert outcome.action == "failed" and "attempt cap" in outcome.reason  # its max_attempts: 1
    run = recovery.ledger.get_run(run_id)
    assert run is not None and run.policy is not None and run.policy.max_attempts == 1
    assert run.config_key == layout.run_config_key(run_id)
    snapshot = recovery.account.s3.get_object(Bucket=BUCKET, Key=layout.run_config_key(run_id))["Body"].read()
    assert snapshot.decode() == config
    assert list(inbox_by_status(recovery.account.inbox.messages())) == ["FAILED"]


def test_an_adopted_config_outside_adopt_is_not_read(recovery: Recovery) -> None:
    recovery.account.s3.put_object(
        Bucket=BUCKET, Key="configs/legacy.yaml", Body=b"job:\n  max_attempts: 1\n  channels: {train: d/}\n"
    )
    _create_elsewhere(recovery, SDK_NAME, {TAG_ADOPT: "true", TAG_CONFIG: "configs/../configs/legacy.yaml"})
    [outcome] = recovery.deliver(_end(recovery, SDK_NAME, *INTERRUPTED, training_s=60, billable_s=20))
    assert outcome.action == "retrying"  # the default policy: the named file was refused
    run = recovery.ledger.get_run(run_id_for_job(SDK_NAME))
    assert run is not None and run.config_key is None


def test_an_adopted_job_with_another_role_is_settled_not_relaunched(recovery: Recovery) -> None:
    other = "arn:aws:iam::123456789012:role/team-notebook"
    _create_elsewhere(recovery, SDK_NAME, {TAG_ADOPT: "true"}, role=other)
    [outcome] = recovery.deliver(_end(recovery, SDK_NAME, *INTERRUPTED, training_s=60, billable_s=20))
    assert outcome.action == "failed"
    assert other in outcome.reason and ROLE_ARN in outcome.reason
    assert recovery.queued_relaunches() == []
    [alert] = recovery.account.inbox.messages()
    assert alert["MessageAttributes"]["status"]["Value"] == "FAILED"


def test_an_adopted_job_without_checkpoints_restarts_from_zero_and_counts_the_work_lost(
    recovery: Recovery,
) -> None:
    _create_elsewhere(recovery, SDK_NAME, {TAG_ADOPT: "true"}, checkpoints=False)
    run_id = run_id_for_job(SDK_NAME)
    [outcome] = recovery.deliver(_end(recovery, SDK_NAME, *INTERRUPTED, training_s=600, billable_s=180))
    assert outcome.action == "retrying"
    [retrying] = recovery.account.inbox.messages()
    assert "restarts from zero" in retrying["Subject"]
    body = json.loads(retrying["Message"])
    assert body["resumes"] is False and body["work_lost"]["training_s"] == 600
    recovery.run_relaunches()
    [done] = recovery.deliver(_end(recovery, job(run_id, 2), "Completed", training_s=700, billable_s=210))
    assert done.action == "succeeded"
    report = recovery.report(run_id)
    assert report["resumes"] is False
    assert report["work_lost"]["attempts"] == [1] and report["work_lost"]["training_s"] == 600
    assert report["work_lost"]["estimated_cost_usd"] > 0
    [succeeded] = recovery.account.inbox.messages()
    assert json.loads(succeeded["Message"])["work_lost"]["training_s"] == 600
