"""Duplicate and out-of-order events never make extra jobs (S3, SQS and EventBridge deliver at least
once, in any order); an inference config dropped under configs/ is refused at launch; what a
_job.yaml passes to the container comes back as it was."""

from __future__ import annotations

import json

from spotline.config import parse_run_config
from spotline.domain.events import parse_object_created
from tests.support.aws_account import BUCKET, Account
from tests.support.batches import (
    feed,
    image_event,
    manifest_of,
    pipeline,
    promote,
    settings_for,
    training_jobs,
)
from tests.support.launch import job_names, launch, put_config

FOLDER = "rail-2026-11-27"


def _marker(upload: str) -> dict[str, object]:
    """A ``_READY`` upload: its redeliveries carry the same sequencer, a new upload another one."""
    event = image_event(f"inference/{FOLDER}/_READY", size=0)
    event["detail"]["object"]["sequencer"] = upload  # type: ignore[index]
    return event


def _images(prefix: str, n: int) -> list[dict[str, object]]:
    return [image_event(f"inference/{FOLDER}/{prefix}-{i:03d}.jpg") for i in range(n)]


def test_a_ready_marker_delivered_again_after_its_batch_closed_makes_no_extra_job(account: Account) -> None:
    p = pipeline(account, settings_for(account))
    promote(p.table)
    marker = _marker("0062A6F6C3D1E2F3C6")
    feed(p, [*_images("morning", 12), marker])
    assert len(training_jobs(account)) == 1  # closed at once by the marker

    p.clock.advance(30)
    [redelivered] = feed(p, [marker]).values()  # S3 delivers the marker's event again
    assert redelivered.action == "duplicate"
    batch = p.batches.get_batch(FOLDER)
    assert batch is not None and not batch.ready

    # The afternoon's upload arrives in three SQS batches: it is one job, closed when quiet.
    afternoon = _images("afternoon", 30)
    for start in (0, 10, 20):
        feed(p, afternoon[start : start + 10], writer=f"pm-{start}")
        p.clock.advance(5)
        p.closer.close_due_batches()
    p.clock.advance(p.settings.batch_settle_seconds)
    p.closer.close_due_batches()
    assert sorted(len(manifest_of(account, j)) - 1 for j in training_jobs(account)) == [12, 30]


def test_a_ready_marker_processed_before_the_images_it_follows_makes_no_extra_job(account: Account) -> None:
    p = pipeline(account, settings_for(account))
    promote(p.table)
    [early] = feed(p, [_marker("0062A6F6C3D1E2F3C7")]).values()  # S3 events come in any order
    assert early.action == "ready" and "no image" in early.reason
    batch = p.batches.get_batch(FOLDER)
    assert batch is None or not batch.ready

    images = _images("img", 25)
    for start in range(0, 25, 5):  # the images trickle in, five per SQS batch
        feed(p, images[start : start + 5], writer=f"w-{start}")
        p.clock.advance(3)
        p.closer.close_due_batches()
    assert training_jobs(account) == []  # nothing closed early on a stale marker
    p.clock.advance(p.settings.batch_settle_seconds)
    p.closer.close_due_batches()
    [job] = training_jobs(account)
    assert len(manifest_of(account, job)) - 1 == 25


def test_a_second_ready_upload_closes_the_next_generation(account: Account) -> None:
    p = pipeline(account, settings_for(account))
    promote(p.table)
    feed(p, [*_images("a", 5), _marker("00000000000000000A")])
    feed(p, [*_images("b", 7), _marker("00000000000000000B")])
    jobs = training_jobs(account)
    assert sorted(len(manifest_of(account, j)) - 1 for j in jobs) == [5, 7]


def test_an_inference_config_under_configs_is_refused_at_launch(account: Account) -> None:
    text = "mode: inference\njob:\n  channels: {train: datasets/rail/train/}\n"
    outcome = launch(account, put_config(account, "configs/infer.yaml", text))
    assert outcome.action == "rejected" and "inference/<batch>/" in outcome.reason
    assert job_names(account) == []
    [alert] = account.inbox.messages()
    assert json.loads(alert["Message"])["errors"][0]["key"] == "mode"


def test_a_job_file_threshold_of_0_00001_reaches_the_container_as_a_number(account: Account) -> None:
    p = pipeline(account, settings_for(account))
    promote(p.table)
    account.s3.put_object(
        Bucket=BUCKET,
        Key=f"inference/{FOLDER}/_job.yaml",
        Body=b"inference:\n  score_threshold: 0.00001\n  batch_size: 8\n",
    )
    feed(p, [*_images("x", 3), _marker("00000000000000000C")])
    [job] = training_jobs(account)
    hyperparameters = job["HyperParameters"]
    assert hyperparameters["inference.score_threshold"] != "1e-05"
    # The container's own reading of its hyperparameters (spotline_container.runner.resolve_config).
    config = parse_run_config("job:\n  channels: {train: datasets/x/}\n", overrides=hyperparameters)
    assert config.inference.score_threshold == 0.00001
    assert config.inference.batch_size == 8
    assert config.mode == "inference"


def test_the_config_rule_delivers_any_letter_case_and_the_launcher_takes_it(account: Account) -> None:
    text = "job:\n  channels: {train: datasets/rail/train/}\n"
    for key in ("configs/rail.Yaml", "configs/RAIL.YML"):
        assert launch(account, put_config(account, key, text)).action == "launched"
    other = put_config(account, "configs/notes.txt", "hello")
    assert launch(account, other).action == "ignored"
    assert parse_object_created(other).key == "configs/notes.txt"
    assert len(job_names(account)) == 2
