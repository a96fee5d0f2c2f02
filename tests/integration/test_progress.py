"""How far each attempt got, read from the run's checkpoint pointer in S3 after every attempt: the
recorded iterations, one alert when checkpoints do not reach S3, and a stop when relaunches make no
progress. Through the job-state and relaunch functions, on moto."""

from __future__ import annotations

import json

import pytest

from spotline.domain.progress import STARTUP_ALLOWANCE_S
from spotline.domain.states import RunStatus
from tests.support.aws_account import BUCKET, Account
from tests.support.recovery import Recovery, build_recovery, inbox_by_status, rail_config

PERIOD_S = 300  # checkpoint.period_minutes: 5 (the default)
LONG = PERIOD_S + STARTUP_ALLOWANCE_S + 60  # trained long enough that a checkpoint was due
SHORT = 120
INTERRUPTED = ("Stopped", "Interrupted")


@pytest.fixture
def recovery(account: Account, monkeypatch: pytest.MonkeyPatch) -> Recovery:
    return build_recovery(account, monkeypatch)


def job(run_id: str, attempt: int) -> str:
    return f"spotline-{run_id}-a{attempt:02d}"


def _attempts(recovery: Recovery, run_id: str) -> list[tuple[int | None, int | None]]:
    return [(a.start_iteration, a.end_iteration) for a in recovery.ledger.attempts(run_id)]


def _interrupt(recovery: Recovery, run_id: str, attempt: int, training_s: int, **job_fields: object) -> str:
    [outcome] = recovery.end(job(run_id, attempt), *INTERRUPTED, training_s=training_s, **job_fields)
    if outcome.action == "retrying":
        assert recovery.run_relaunches()[0].action == "launched"
    return outcome.action


def test_each_attempt_records_the_iterations_it_started_and_ended_at(recovery: Recovery) -> None:
    run_id = recovery.drop_config(rail_config())
    recovery.checkpoint(run_id, 150)
    assert _interrupt(recovery, run_id, 1, LONG, metrics={"train/iteration": 150}) == "retrying"
    recovery.checkpoint(run_id, 400)
    assert _interrupt(recovery, run_id, 2, LONG, metrics={"train/iteration": 455}) == "retrying"
    recovery.checkpoint(run_id, 1000)
    assert (
        recovery.end(job(run_id, 3), "Completed", training_s=LONG, metrics={"train/iteration": 1000})[
            0
        ].action
        == "succeeded"
    )

    assert _attempts(recovery, run_id) == [(0, 150), (150, 400), (400, 1000)]
    report = recovery.report(run_id)
    lost = [(a["attempt"], a["reached_iteration"], a["work_lost_iterations"]) for a in report["attempts"]]
    assert lost == [(1, 150, 0), (2, 455, 55), (3, 1000, 0)]
    assert "WARNING" not in inbox_by_status(recovery.account.inbox.messages())


def test_an_attempt_whose_checkpoints_miss_s3_raises_one_alert(recovery: Recovery) -> None:
    run_id = recovery.drop_config(rail_config())
    first = recovery.end(job(run_id, 1), *INTERRUPTED, training_s=LONG, times=2)  # no pointer in S3
    assert [o.action for o in first] == ["retrying", "duplicate"]
    assert recovery.run_relaunches()[0].action == "launched"
    assert _interrupt(recovery, run_id, 2, LONG) == "retrying"  # still none: the alert was sent

    inbox = inbox_by_status(recovery.account.inbox.messages())
    [warning] = inbox["WARNING"]
    assert warning["Subject"] == "spotline: rail.yaml: checkpoints are not reaching S3"
    assert warning["MessageAttributes"]["run_id"]["Value"] == run_id
    body = json.loads(warning["Message"])
    assert body["attempt"] == 1 and body["end_iteration"] is None and body["checkpoint_period_s"] == PERIOD_S
    assert body["checkpoints"] == f"s3://{BUCKET}/runs/{run_id}/checkpoints/"
    assert f"trained {LONG} s" in body["reason"]
    assert len(inbox["RETRYING"]) == 2
    assert [e["detail-type"] for e in recovery.spotline_events()].count("Run Warning") == 1


def test_a_run_whose_last_two_relaunches_made_no_progress_stops(recovery: Recovery) -> None:
    run_id = recovery.drop_config(rail_config(max_attempts=10))
    recovery.checkpoint(run_id, 600)
    assert _interrupt(recovery, run_id, 1, LONG) == "retrying"
    assert _interrupt(recovery, run_id, 2, LONG) == "retrying"  # resumed at 600, left 600
    assert _interrupt(recovery, run_id, 3, LONG) == "failed"  # again: the second relaunch in a row

    run = recovery.ledger.get_run(run_id)
    assert run is not None and run.status == RunStatus.FAILED and run.cap == "no-progress cap"
    assert _attempts(recovery, run_id) == [(0, 600), (600, 600), (600, 600)]
    assert recovery.queued_relaunches() == []
    assert recovery.job_names() == [job(run_id, a) for a in (1, 2, 3)]
    inbox = inbox_by_status(recovery.account.inbox.messages())
    [alert] = inbox["FAILED"]
    assert alert["Subject"] == "spotline: rail.yaml failed (no-progress cap)"
    reason = json.loads(alert["Message"])["reason"]
    assert "no-progress cap reached: the last 2 relaunches left no newer checkpoint" in reason
    assert "attempt 2" in reason and "attempt 3" in reason and "iteration 600" in reason
    assert len(inbox["WARNING"]) == 1  # attempt 2 was the first to leave nothing newer: one warning
    assert recovery.report(run_id)["cap"] == "no-progress cap"


def test_short_interruptions_and_capacity_errors_are_not_a_lack_of_progress(recovery: Recovery) -> None:
    run_id = recovery.drop_config(rail_config(max_attempts=10))
    recovery.checkpoint(run_id, 600)
    for attempt in (1, 2, 3, 4):  # interrupted before a checkpoint was due, every time
        assert _interrupt(recovery, run_id, attempt, SHORT) == "retrying"
    capacity = "CapacityError: Unable to provision requested ML compute capacity."
    assert recovery.end(job(run_id, 5), "Failed", "Failed", capacity)[0].action == "retrying"

    assert "WARNING" not in inbox_by_status(recovery.account.inbox.messages())
    assert _attempts(recovery, run_id) == [(0, 600)] + [(600, 600)] * 4


@pytest.mark.parametrize("pointer", ["absent", "garbage", "names-a-missing-file"])
def test_an_image_without_our_pointer_records_unknown_and_changes_nothing(
    recovery: Recovery, pointer: str
) -> None:
    run_id = recovery.drop_config(rail_config(max_attempts=10))
    prefix = f"runs/{run_id}/checkpoints/"
    if pointer == "garbage":
        recovery.account.s3.put_object(Bucket=BUCKET, Key=prefix + "latest", Body=b"\xff step 7 \x00" * 50)
    elif pointer == "names-a-missing-file":
        recovery.account.s3.put_object(Bucket=BUCKET, Key=prefix + "latest", Body=b"model_00000900.pt\n")
    foreign = "123456789012.dkr.ecr.eu-west-3.amazonaws.com/their-trainer:7"
    for attempt in (1, 2, 3, 4):
        assert _interrupt(recovery, run_id, attempt, LONG, image=foreign) == "retrying"
    assert recovery.end(job(run_id, 5), "Completed", training_s=LONG, image=foreign)[0].action == "succeeded"

    assert _attempts(recovery, run_id) == [(0, None)] * 5  # unknown: nothing in S3 says otherwise
    report = recovery.report(run_id)
    assert report["status"] == "SUCCEEDED"
    assert {a["end_iteration"] for a in report["attempts"]} == {None}
    assert "WARNING" not in inbox_by_status(recovery.account.inbox.messages())
