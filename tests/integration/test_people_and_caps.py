"""People and caps: deleting a config cancels its runs (the queued relaunch does nothing, a running
job is not relaunched), in whatever order S3 delivers the deletion; an inference part that keeps
hitting an account quota stops at the quota retry cap instead of retrying every minute forever."""

from __future__ import annotations

import json

from spotline.domain.events import parse_object_deleted
from spotline.domain.retry import QUOTA_RETRY_LIMIT
from spotline.domain.settings import Settings
from spotline.domain.states import RunStatus
from spotline.runs.relaunch import RelaunchRequest
from spotline.wiring import Wiring
from tests.support.aws_account import BUCKET
from tests.support.batches import Clock, image_event, promote
from tests.support.events import s3_object_deleted
from tests.support.recovery import INTERRUPTED, Recovery, inbox_by_status, job, rail_config

KEY = "configs/rail.yaml"


def _delete(recovery: Recovery, event: dict[str, object]) -> list[str]:
    w = Wiring(recovery.settings, clients=recovery.account.client, clock=recovery.clock)
    outcome = w.config_deletion.cancel_runs_of(parse_object_deleted(event))
    return [*outcome.cancelled, *(f"stopping:{r}" for r in outcome.stopping)]


def _delete_marker(recovery: Recovery) -> dict[str, object]:
    marker = recovery.account.s3.delete_object(Bucket=BUCKET, Key=KEY)
    return s3_object_deleted(BUCKET, KEY, version_id=marker.get("VersionId"))


def test_deleting_the_config_of_a_run_waiting_to_relaunch_cancels_it(recovery: Recovery) -> None:
    run_id = recovery.drop_config(rail_config())
    [ended] = recovery.end(job(run_id, 1), *INTERRUPTED, training_s=60, billable_s=20)
    assert ended.action == "retrying"

    event = _delete_marker(recovery)
    assert _delete(recovery, event) == [run_id]
    assert _delete(recovery, event) == []  # a redelivered deletion changes nothing

    run = recovery.ledger.get_run(run_id)
    assert run is not None and run.status == RunStatus.CANCELLED and "was deleted" in run.reason
    assert [o.action for o in recovery.run_relaunches(times=2)] == ["ignored", "ignored"]
    assert recovery.job_names() == [job(run_id, 1)]  # the queued relaunch created nothing
    inbox = inbox_by_status(recovery.account.inbox.messages())
    assert sorted((k, len(v)) for k, v in inbox.items()) == [("CANCELLED", 1), ("RETRYING", 1)]


def test_deleting_the_config_of_a_running_job_lets_it_finish_and_relaunches_nothing(
    recovery: Recovery,
) -> None:
    run_id = recovery.drop_config(rail_config())
    assert _delete(recovery, _delete_marker(recovery)) == [f"stopping:{run_id}"]
    run = recovery.ledger.get_run(run_id)
    assert run is not None and run.status == RunStatus.RUNNING  # what is paid for keeps running

    [ended] = recovery.end(job(run_id, 1), *INTERRUPTED, training_s=60, billable_s=20)
    assert ended.action == "cancelled"
    assert recovery.queued_relaunches() == []
    assert recovery.job_names() == [job(run_id, 1)]
    [alert] = recovery.account.inbox.messages()
    assert alert["MessageAttributes"]["status"]["Value"] == "CANCELLED"


def test_a_deletion_delivered_after_a_new_version_was_launched_spares_the_new_run(
    recovery: Recovery,
) -> None:
    old_run = recovery.drop_config(rail_config())
    event = _delete_marker(recovery)  # deleted...
    new_run = recovery.drop_config(rail_config(max_attempts=3))  # ...uploaded again, launched...
    assert new_run != old_run
    assert _delete(recovery, event) == [f"stopping:{old_run}"]  # ...and the deletion arrives last
    new = recovery.ledger.get_run(new_run)
    assert new is not None and new.cancel_reason is None and new.status == RunStatus.RUNNING
    [ended] = recovery.end(job(new_run, 1), *INTERRUPTED, training_s=60, billable_s=20)
    assert ended.action == "retrying"  # the new version's run recovers as usual


def test_a_permanently_deleted_version_cancels_only_its_own_run(recovery: Recovery) -> None:
    first = recovery.drop_config(rail_config())
    second = recovery.drop_config(rail_config(max_attempts=3))
    first_run = recovery.ledger.get_run(first)
    assert first_run is not None
    oldest = first_run.source.version
    recovery.account.s3.delete_object(Bucket=BUCKET, Key=KEY, VersionId=oldest)
    event = s3_object_deleted(BUCKET, KEY, version_id=oldest, permanently=True)
    assert _delete(recovery, event) == [f"stopping:{first}"]
    second_run = recovery.ledger.get_run(second)
    assert second_run is not None and second_run.cancel_reason is None


def test_a_relaunch_that_claimed_its_attempt_finishes_and_the_run_ends_after_its_job(
    recovery: Recovery,
) -> None:
    """The cancel and the relaunch race: the relaunch claimed the attempt before the cancel came."""
    run_id = recovery.drop_config(rail_config())
    recovery.end(job(run_id, 1), *INTERRUPTED, training_s=60, billable_s=20)
    [(message, _)] = recovery.queued_relaunches()
    recovery.clock.now = float(message["not_before"])
    recovery.ledger.claim_relaunch(run_id, 2, now=recovery.clock.now)  # the relaunch is mid-create
    assert _delete(recovery, _delete_marker(recovery)) == [f"stopping:{run_id}"]
    assert recovery.relauncher.relaunch(RelaunchRequest.from_body(json.dumps(message))).action == "cancelled"
    assert recovery.job_names() == [job(run_id, 1)]  # it had not created the job yet: nothing is created
    run = recovery.ledger.get_run(run_id)
    assert run is not None and run.status == RunStatus.CANCELLED


def test_an_inference_part_on_a_quota_stops_at_the_quota_retry_cap(recovery: Recovery) -> None:
    from botocore.awsrequest import AWSResponse

    account = recovery.account
    creates = {"calls": 0}

    def quota(**_: object) -> tuple[AWSResponse, dict[str, object]]:
        creates["calls"] += 1
        error = {"Error": {"Code": "ResourceLimitExceeded", "Message": "quota 0"}, "ResponseMetadata": {}}
        return AWSResponse("https://api.sagemaker", 400, {}, None), error  # type: ignore[arg-type]

    account.sagemaker.meta.events.register("before-call.sagemaker.CreateTrainingJob", quota)
    clock = Clock()
    w = Wiring(Settings.from_env(), clients=account.client, clock=clock)
    promote(w.table)
    images = [image_event(f"inference/rail-q/{i}.jpg") for i in range(4)]
    w.image_intake.record_messages(
        [(f"m{i}", json.dumps(e)) for i, e in enumerate(images)], writer="w", deadline=clock() + 900
    )
    clock.advance(121)
    [closed] = w.batch_closer.close_due_batches()
    [part] = closed.runs
    assert (closed.action, part.action) == ("launched", "deferred")
    for _ in range(10):  # every minute's sweep: nothing more is tried for the closed batch
        clock.advance(60)
        assert w.batch_closer.close_due_batches() == []

    outcomes = []
    while (queued := recovery.queued_relaunches()) and len(outcomes) < 50:
        for body, _ in queued:
            clock.now = max(clock.now, float(body["not_before"]))
            outcomes.append(w.relauncher.relaunch(RelaunchRequest.from_body(json.dumps(body))).action)
    run = w.ledger.get_run(part.run_id)
    assert run is not None and run.status == RunStatus.FAILED and run.cap == "quota retry cap"
    assert creates["calls"] == QUOTA_RETRY_LIMIT + 1  # the first try and the capped retries
    assert outcomes.count("failed") == 1
    [alert] = [m for m in account.inbox.messages() if m["MessageAttributes"]["status"]["Value"] == "FAILED"]
    assert "quota" in alert["Subject"]
