"""Every paid job is tracked: once CreateTrainingJob succeeded, the run is watched to its end.

On moto: a launch that dies after the create, a job whose run the ledger never heard of, a relaunch
that died after its create, a run left PENDING (the alarm's count), and values the ledger cannot
store (refused before anything is paid for).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from spotline.domain import layout
from spotline.domain.requests import TAG_ATTEMPT, TAG_KIND, TAG_RUN_ID, TAG_SOURCE_KEY
from spotline.domain.states import RunStatus
from spotline.runs.first_attempt import LAUNCH_LEASE_SECONDS
from spotline.wiring import Wiring
from tests.support.aws_account import BUCKET, IMAGE_URI, ROLE_ARN, Account
from tests.support.recovery import INTERRUPTED, Recovery, inbox_by_status, job, rail_config, train_channels


class _DiesAfterCreate:
    """The Lambda dies right after CreateTrainingJob: every ledger update after it fails."""

    def __init__(self, account: Account) -> None:
        self.created = False
        account.sagemaker.meta.events.register("after-call.sagemaker.CreateTrainingJob", self._created)
        account.dynamodb.meta.events.register("before-call.dynamodb.UpdateItem", self._refuse)

    def _created(self, **_: Any) -> None:
        self.created = True

    def _refuse(self, **_: Any) -> None:
        if self.created:
            raise TimeoutError("Task timed out after 60.00 seconds")

    def heal(self, account: Account) -> None:
        account.dynamodb.meta.events.unregister("before-call.dynamodb.UpdateItem", self._refuse)


def test_a_launch_that_dies_after_the_create_is_caught_up_when_its_job_ends(recovery: Recovery) -> None:
    account = recovery.account
    fault = _DiesAfterCreate(account)
    with pytest.raises(TimeoutError):
        recovery.drop_config(rail_config(max_attempts=4))
    fault.heal(account)
    [name] = recovery.job_names()  # the job exists and is paid for
    run_id = name.removeprefix("spotline-").removesuffix("-a01")
    run = recovery.ledger.get_run(run_id)
    assert run is not None and run.status == RunStatus.PENDING and run.launch_recorded

    # While it is PENDING past its lease, the run watch counts it (the RunsStuckPending alarm).
    watch = Wiring(recovery.settings, clients=account.client, clock=recovery.clock).pending_watch
    assert watch.stuck_runs() == []  # still within its launch lease
    recovery.clock.now += LAUNCH_LEASE_SECONDS + 1
    assert watch.stuck_runs() == [run_id]

    # Its job is interrupted: the run is caught up from the job and relaunched like any other.
    [outcome] = recovery.end(name, *INTERRUPTED, training_s=600, billable_s=200)
    assert (outcome.action, outcome.next_attempt) == ("retrying", 2)
    run = recovery.ledger.get_run(run_id)
    assert run is not None and (run.status, run.attempt) == (RunStatus.RETRYING, 1)
    [attempt] = recovery.ledger.attempts(run_id)
    assert (attempt.job_name, attempt.status, attempt.billable_s) == (name, "INTERRUPTED", 200)
    assert [o.action for o in recovery.run_relaunches()] == ["launched"]
    assert recovery.job_names() == [name, job(run_id, 2)]
    assert watch.stuck_runs() == []
    assert list(inbox_by_status(account.inbox.messages())) == ["RETRYING"]


def _create_job_behind_the_ledger(account: Account, run_id: str, *, attempt: int = 1) -> str:
    """A spotline-named, spotline-tagged job whose launch never reached the ledger."""
    name = job(run_id, attempt)
    account.sagemaker.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": IMAGE_URI, "TrainingInputMode": "File"},
        RoleArn=ROLE_ARN,
        InputDataConfig=train_channels(),
        OutputDataConfig={"S3OutputPath": layout.output_uri(BUCKET, run_id)},
        ResourceConfig={"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
        StoppingCondition={"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200},
        EnableManagedSpotTraining=True,
        CheckpointConfig={"S3Uri": layout.checkpoint_uri(BUCKET, run_id), "LocalPath": "/opt/ml/checkpoints"},
        Tags=[
            {"Key": TAG_RUN_ID, "Value": run_id},
            {"Key": TAG_ATTEMPT, "Value": str(attempt)},
            {"Key": TAG_SOURCE_KEY, "Value": "configs/rail.yaml"},
            {"Key": TAG_KIND, "Value": "training"},
        ],
    )
    return name


def test_a_job_the_ledger_never_heard_of_is_tracked_from_its_tags_and_config_snapshot(
    recovery: Recovery,
) -> None:
    account, run_id = recovery.account, "rail-0123456789ab"
    account.s3.put_object(
        Bucket=BUCKET, Key=layout.run_config_key(run_id), Body=rail_config(max_attempts=2).encode()
    )
    name = _create_job_behind_the_ledger(account, run_id)

    [outcome] = recovery.end(name, *INTERRUPTED, training_s=300, billable_s=90)

    assert outcome.action == "retrying"
    run = recovery.ledger.get_run(run_id)
    assert run is not None and run.status == RunStatus.RETRYING
    assert run.source.key == "configs/rail.yaml"
    assert run.config_key == layout.run_config_key(run_id)
    assert run.policy is not None and run.policy.max_attempts == 2  # from the snapshot, not a default
    assert run.checkpoint_uri == layout.checkpoint_uri(BUCKET, run_id)
    assert [o.action for o in recovery.run_relaunches()] == ["launched"]
    relaunched = recovery.job(job(run_id, 2))
    assert relaunched["CheckpointConfig"]["S3Uri"] == layout.checkpoint_uri(BUCKET, run_id)

    # The second attempt is interrupted too: the snapshot's attempt cap stops the run, with an alert.
    [last] = recovery.end(job(run_id, 2), *INTERRUPTED, training_s=300, billable_s=90)
    assert (last.action, "attempt cap" in last.reason) == ("failed", True)
    inbox = inbox_by_status(account.inbox.messages())
    assert sorted((k, len(v)) for k, v in inbox.items()) == [("FAILED", 1), ("RETRYING", 1)]


def test_without_a_snapshot_the_job_is_tracked_with_the_default_policy(recovery: Recovery) -> None:
    run_id = "lost-0123456789ab"
    name = _create_job_behind_the_ledger(recovery.account, run_id)
    [outcome] = recovery.end(name, "Completed", training_s=100, billable_s=30)
    assert outcome.action == "succeeded"
    run = recovery.ledger.get_run(run_id)
    assert run is not None and run.status == RunStatus.SUCCEEDED
    assert run.policy is not None and run.policy.ladder == ("ml.g4dn.xlarge",)
    report = json.loads(
        recovery.account.s3.get_object(Bucket=BUCKET, Key=layout.run_report_key(run_id))["Body"].read()
    )
    assert report["attempts"][0]["billable_s"] == 30


def test_a_job_whose_tags_name_another_run_is_not_adopted(recovery: Recovery) -> None:
    run_id = "mine-0123456789ab"
    name = _create_job_behind_the_ledger(recovery.account, run_id)
    recovery.account.sagemaker.add_tags(
        ResourceArn=recovery.job(name)["TrainingJobArn"], Tags=[{"Key": TAG_RUN_ID, "Value": "other"}]
    )
    event_tags = {"Tags": {TAG_RUN_ID: "someone-elses-run"}}
    from tests.support.recovery import end_job, state_change_event

    end_job(name, "Completed")
    event = state_change_event(name, "Completed")
    event["detail"].update(event_tags)
    [outcome] = recovery.deliver(event)
    assert outcome.action == "ignored" and "names run" in outcome.reason
    assert recovery.ledger.get_run(run_id) is None


def test_a_job_named_like_spotlines_but_untagged_is_not_taken(recovery: Recovery) -> None:
    """Relaunching someone else's job would spend their money: without the run-id tag it is left alone."""
    run_id = "foreign-0123456789ab"
    name = _create_job_behind_the_ledger(recovery.account, run_id)
    arn = recovery.job(name)["TrainingJobArn"]
    recovery.account.sagemaker.delete_tags(ResourceArn=arn, TagKeys=[TAG_RUN_ID])
    [outcome] = recovery.end(name, *INTERRUPTED, training_s=60, billable_s=20)
    assert outcome.action == "ignored" and TAG_RUN_ID in outcome.reason
    assert recovery.ledger.get_run(run_id) is None
    assert recovery.queued_relaunches() == []


def test_a_relaunch_that_died_after_its_create_is_caught_up_and_a_stop_cancels_the_run(
    recovery: Recovery,
) -> None:
    """A person stops the job while the run still waits in RETRYING: the run is CANCELLED and the
    queued relaunch does nothing."""
    run_id = recovery.drop_config(rail_config())
    [outcome] = recovery.end(job(run_id, 1), *INTERRUPTED, training_s=60, billable_s=20)
    assert outcome.action == "retrying"
    [(message, _)] = recovery.queued_relaunches()
    # The relaunch's create went through, then it died before marking the run RUNNING.
    fault = _DiesAfterCreate(recovery.account)
    from spotline.runs.relaunch import RelaunchRequest

    recovery.clock.now = float(message["not_before"])
    with pytest.raises(TimeoutError):
        recovery.relauncher.relaunch(RelaunchRequest.from_body(json.dumps(message)))
    fault.heal(recovery.account)
    run = recovery.ledger.get_run(run_id)
    assert run is not None and (run.status, run.attempt) == (RunStatus.RETRYING, 1)

    # Someone stops attempt 2's job: its Stopped event reaches a run still RETRYING at attempt 1.
    [stopped] = recovery.end(job(run_id, 2), "Stopped", "Stopped", training_s=30, billable_s=10)
    assert stopped.action == "cancelled"
    run = recovery.ledger.get_run(run_id)
    assert run is not None and (run.status, run.attempt) == (RunStatus.CANCELLED, 2)
    # The relaunch's redelivery creates nothing.
    assert recovery.relauncher.relaunch(RelaunchRequest.from_body(json.dumps(message))).action == "duplicate"
    assert recovery.job_names() == [job(run_id, 1), job(run_id, 2)]
    inbox = inbox_by_status(recovery.account.inbox.messages())
    assert sorted((k, len(v)) for k, v in inbox.items()) == [("CANCELLED", 1), ("RETRYING", 1)]


@pytest.mark.parametrize(
    "extra",
    [
        "budget_usd: .inf",
        "budget_usd: .nan",
        "budget_usd: 1e200",
        "budget_usd: 1.0e+200",
        "instance_count: 999999999999999999999999999999999999999999",
        "budget_usd: 1.0e-300",
    ],
)
def test_a_value_the_ledger_cannot_store_is_refused_before_anything_is_paid_for(
    recovery: Recovery, extra: str
) -> None:
    text = rail_config(extra=extra)
    from spotline.domain.events import parse_object_created
    from tests.support.events import s3_object_created

    put = recovery.account.s3.put_object(Bucket=BUCKET, Key="configs/rail.yaml", Body=text.encode())
    event = s3_object_created(
        BUCKET, "configs/rail.yaml", etag=put["ETag"].strip('"'), size=len(text), version_id=put["VersionId"]
    )
    outcome = recovery.launcher.launch_from_object(parse_object_created(event))
    assert outcome.action == "rejected", outcome
    assert recovery.job_names() == []
    assert outcome.run_id is not None
    run = recovery.ledger.get_run(outcome.run_id)
    assert run is not None and run.status == RunStatus.REJECTED
    [alert] = recovery.account.inbox.messages()
    assert alert["MessageAttributes"]["status"]["Value"] == "REJECTED"
    report = json.loads(
        recovery.account.s3.get_object(Bucket=BUCKET, Key=layout.run_rejection_key(outcome.run_id))[
            "Body"
        ].read()
    )
    assert report["errors"][0]["key"].startswith("job.")
