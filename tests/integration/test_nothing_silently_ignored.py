"""Nothing is silently ignored: a near-miss config key, a skipped file, a failed promotion gate, a
rejection's errors each reach the person, once."""

from __future__ import annotations

import json

import pytest

from spotline.domain.states import RunStatus
from spotline_local.cli.ledger_view import run_detail, run_view, runs_table
from tests.support.aws_account import BUCKET, Account
from tests.support.batches import feed, image_event, pipeline, promote, settings_for
from tests.support.launch import job_names, launch, put_config, wiring
from tests.support.recovery import Recovery, job, rail_config
from tests.support.results import complete_job, job_output_archive, settle_completed

CONFIG = "job:\n  channels: {train: datasets/rail/train/}\n"


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("configs/rail.yaml.txt", "only .yaml or .yml files under configs/ start runs"),
        ("config/rail.yaml", "move it to configs/rail.yaml"),
        ("Configs/rail.yaml", "move it to configs/rail.yaml"),
        ("CONFIGS/team/rail.YML", "move it to configs/team/rail.YML"),
        ("config.yaml", "a config at the top of the bucket starts nothing"),
    ],
)
def test_a_near_miss_key_gets_one_alert_saying_why_and_starts_nothing(
    account: Account, key: str, says: str
) -> None:
    event = put_config(account, key, CONFIG)
    for _ in range(3):  # S3 and EventBridge deliver more than once
        outcome = launch(account, event)
        assert outcome.action == "ignored" and says in outcome.reason
    [alert] = account.inbox.messages()
    assert alert["Subject"].startswith(f"spotline: ignored {key.rsplit('/', 1)[-1]}")
    body = json.loads(alert["Message"])
    assert body["ignored"] == f"s3://{BUCKET}/{key}" and says in body["reason"]
    assert alert["MessageAttributes"]["kind"]["Value"] == "ignored"
    assert job_names(account) == []
    listed = account.s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/").get("KeyCount", 0)
    assert listed == 0  # the alert writes nothing into the bucket: it cannot trigger anything


def test_a_new_upload_of_the_same_wrong_key_is_told_again(account: Account) -> None:
    launch(account, put_config(account, "config/rail.yaml", CONFIG))
    launch(account, put_config(account, "config/rail.yaml", CONFIG + "# edited\n"))
    assert len(account.inbox.messages()) == 2


def test_keys_that_are_none_of_spotlines_business_stay_quiet(account: Account) -> None:
    for key in ("configuration-notes/readme.md", "Config/photo.jpg"):
        assert launch(account, put_config(account, key, "x")).action == "ignored"
    assert account.inbox.messages() == []


def test_skipped_files_of_a_batch_folder_are_listed_in_its_summary(account: Account) -> None:
    folder = "line-7"
    p = pipeline(account, settings_for(account))
    promote(p.table)
    account.s3.put_object(Bucket=BUCKET, Key=f"inference/{folder}/a.jpg", Body=b"\xff\xd8\xff fake jpeg")
    events = [
        image_event(f"inference/{folder}/a.jpg"),
        image_event(f"inference/{folder}/notes.txt"),
        image_event(f"inference/{folder}/.DS_Store"),
        image_event(f"inference/{folder}/empty.jpg", size=0),
        image_event(f"inference/{folder}/huge.tif", size=10**12),
        image_event(f"inference/{folder}/_job.yaml"),  # the folder's own settings, not a skipped file
    ]
    feed(p, events)
    feed(p, events)  # redelivered: listed and counted once
    p.clock.advance(121)
    [outcome] = p.closer.close_due_batches()
    [part] = outcome.runs
    run = p.ledger.get_run(part.run_id)
    assert run is not None
    lines = [{"image": "a.jpg", "width": 64, "height": 64, "detections": []}]
    summary = {"images": 1, "classes": ["rail_crack"], "score_threshold": 0.3, "shards": 1}
    settle_completed(
        account, p.settings, part.run_id, complete_job(account, run, job_output_archive(lines, summary))
    )

    written = json.loads(
        account.s3.get_object(Bucket=BUCKET, Key=f"results/{folder}/summary.json")["Body"].read()
    )
    skipped = written["skipped"]
    assert skipped["count"] == 4 and skipped["not_listed"] == 0
    reasons = {f["key"]: f["reason"] for f in skipped["files"]}
    assert set(reasons) == {"notes.txt", ".DS_Store", "empty.jpg", "huge.tif"}
    assert "not an image" in reasons["notes.txt"] and "hidden" in reasons[".DS_Store"]
    assert "empty" in reasons["empty.jpg"] and "image cap" in reasons["huge.tif"]
    [alert] = [m for m in account.inbox.messages() if m["Subject"].startswith(folder)]
    assert json.loads(alert["Message"])["skipped_files"] == 4


def test_the_summary_lists_a_bounded_number_of_skipped_files_and_counts_them_all(account: Account) -> None:
    p = pipeline(account, settings_for(account))
    feed(p, [image_event(f"inference/junk/note-{i:04d}.txt") for i in range(130)])
    skipped = p.batches.skipped_files("junk", limit=100).view()
    assert skipped["count"] == 130 and len(skipped["files"]) == 100 and skipped["not_listed"] == 30


def test_a_run_that_fails_its_promotion_gate_says_so_in_its_subject_and_in_status(recovery: Recovery) -> None:
    run_id = recovery.drop_config(rail_config())
    recovery.account.inbox.messages()
    recovery.end(job(run_id, 1), "Completed", training_s=100, billable_s=30, metrics={"val/mAP50": 0.12})
    [alert] = recovery.account.inbox.messages()
    assert (
        alert["Subject"] == "spotline: rail.yaml succeeded, NOT promoted (not promoted: val/mAP50 0.12 < 0.6)"
    )
    run = recovery.ledger.get_run(run_id)
    assert run is not None and run.status == RunStatus.SUCCEEDED
    view = run_view(recovery.ledger, run)
    assert "COMPLETED, not promoted" in runs_table([view])
    assert "promotion  not promoted: val/mAP50 0.12 < 0.6: inference keeps the model it had" in run_detail(
        view
    )


def test_a_rejected_runs_errors_show_in_status(account: Account) -> None:
    bad = (
        "job:\n  instance_type: ml.t2.nano\n"
        "  channels: {train: datasets/rail/train/, vall: datasets/rail/val/}\n"
    )
    outcome = launch(account, put_config(account, "configs/typo.yaml", bad))
    assert outcome.run_id is not None
    ledger = wiring(account).ledger
    run = ledger.get_run(outcome.run_id)
    assert run is not None and run.status == RunStatus.REJECTED
    view = run_view(ledger, run)
    assert "2 problems: job.instance_type: got 'ml.t2.nano'" in runs_table([view])
    detail = run_detail(view)
    assert "errors     2 - nothing was started:" in detail
    assert "did you mean 'ml.t3.large'?" in detail and "did you mean 'val'?" in detail
