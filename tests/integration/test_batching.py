"""Uploads to batches to inference jobs, on moto: dedup, order, settle window, _READY, splits, races."""

from __future__ import annotations

import random

import pytest

from spotline.domain.states import AttemptStatus, RunKind, RunStatus
from spotline.ledger.records import ImageRecord
from tests.support.aws_account import BUCKET, Account
from tests.support.batches import (
    PROMOTED_ARTIFACT,
    feed,
    image_event,
    manifest_of,
    pipeline,
    promote,
    settings_for,
    training_jobs,
)


def _uploads(folder: str, n: int, *, seed: int = 7) -> tuple[list[str], list[dict]]:
    """``n`` image keys and their events, 10% delivered twice, in random order."""
    keys = [f"inference/{folder}/km-{i // 500:03d}/IMG_{i:05d}.jpg" for i in range(n)]
    events = [image_event(k) for k in keys]
    rng = random.Random(seed)
    events += [image_event(k) for k in rng.sample(keys, n // 10)]
    rng.shuffle(events)
    return keys, events


@pytest.mark.slow
@pytest.mark.parametrize(("max_images", "expected_jobs"), [(20_000, 1), (3_000, 4)])
def test_ten_thousand_uploads_become_ceil_n_over_max_jobs_listing_each_image_once(
    account: Account, max_images: int, expected_jobs: int
) -> None:
    p = pipeline(account, settings_for(account, SPOTLINE_BATCH_MAX_IMAGES=str(max_images)))
    promote(p.table)
    keys, events = _uploads("rail-2026-11-27", 10_000)

    outcomes = feed(p, events)
    actions = [o.action for o in outcomes.values()]
    assert actions.count("recorded") == 10_000
    assert actions.count("duplicate") == 1_000

    full = max_images <= len(keys)
    if not full:  # nothing closes before the settle window
        p.clock.advance(p.settings.batch_settle_seconds - 1)
        assert p.closer.close_due_batches() == []
        assert training_jobs(account) == []
        p.clock.advance(p.settings.batch_settle_seconds)
    # a full batch closes at the first sweep, without waiting for the settle window
    closed = p.closer.close_due_batches()
    assert [(o.action, o.reason) for o in closed] == [("launched", "full" if full else "quiet")]

    jobs = training_jobs(account)
    assert len(jobs) == expected_jobs
    listed: list[str] = []
    for job in jobs:
        manifest = manifest_of(account, job)
        assert manifest[0] == {"prefix": f"s3://{BUCKET}/inference/rail-2026-11-27/"}
        assert len(manifest) - 1 <= max_images
        listed += manifest[1:]
    assert sorted(listed) == sorted(k.removeprefix("inference/rail-2026-11-27/") for k in keys)
    assert len(listed) == len(set(listed))

    p.clock.advance(3600)  # later sweeps launch nothing more
    assert p.closer.close_due_batches() == []
    assert len(training_jobs(account)) == expected_jobs


def test_two_folders_become_two_independent_jobs(account: Account) -> None:
    p = pipeline(account, settings_for(account))
    promote(p.table)
    a_keys, a_events = _uploads("line-a", 300, seed=1)
    b_keys, b_events = _uploads("line-b", 200, seed=2)
    mixed = a_events + b_events
    random.Random(3).shuffle(mixed)
    feed(p, mixed, batch_size=37)
    p.clock.advance(121)
    p.closer.close_due_batches()

    jobs = training_jobs(account)
    assert len(jobs) == 2
    by_prefix = {manifest_of(account, j)[0]["prefix"]: manifest_of(account, j)[1:] for j in jobs}
    assert sorted(by_prefix[f"s3://{BUCKET}/inference/line-a/"]) == sorted(k.split("/", 2)[2] for k in a_keys)
    assert sorted(by_prefix[f"s3://{BUCKET}/inference/line-b/"]) == sorted(k.split("/", 2)[2] for k in b_keys)


def test_ready_marker_closes_the_batch_at_once(account: Account) -> None:
    p = pipeline(account, settings_for(account))
    promote(p.table)
    keys, events = _uploads("rail-urgent", 50)
    feed(p, [*events, image_event("inference/rail-urgent/_READY", size=0)])

    jobs = training_jobs(account)  # no clock move, no sweep: the marker's own invocation launched it
    assert len(jobs) == 1
    assert sorted(manifest_of(account, jobs[0])[1:]) == sorted(k.split("/", 2)[2] for k in keys)


def test_concurrent_closing_attempts_launch_one_job(account: Account) -> None:
    settings = settings_for(account)
    closers = [pipeline(account, settings) for _ in range(4)]
    promote(closers[0].table)
    feed(closers[0], _uploads("rail-race", 120)[1])
    for c in closers:
        c.clock.advance(300)
    stale = closers[0].batches.get_batch("rail-race")
    assert stale is not None
    outcomes = [c.closer.consider(stale) for c in closers]  # all decided from the same snapshot
    outcomes.append(closers[0].closer.close_due_batches())

    assert len(training_jobs(account)) == 1
    launched = [o for batch in outcomes for o in batch if o.action == "launched"]
    assert len(launched) == 1


def test_a_close_waits_for_an_intake_still_writing_and_keeps_its_images(account: Account) -> None:
    p = pipeline(account, settings_for(account))
    promote(p.table)
    feed(p, [image_event(f"inference/rail-slow/a{i}.jpg") for i in range(5)])
    # An intake invocation joined generation 1 and is still writing when the batch closes.
    assert p.batches.register_writer(
        "rail-slow", "slow-writer", generation=1, expires=p.clock() + 600, now=p.clock()
    )
    p.clock.advance(200)
    first = p.closer.close_due_batches()
    assert [o.action for o in first] == ["waiting"]
    assert training_jobs(account) == []
    late = ImageRecord("inference/rail-slow/late.jpg", "late.jpg", "e" * 32, 10)
    assert p.batches.add_image("rail-slow", late, generation=1, now=p.clock())
    assert not p.batches.finish_writer("rail-slow", "slow-writer", generation=1, added=1, now=p.clock())
    p.closer.close_due_batches()
    jobs = training_jobs(account)
    assert len(jobs) == 1
    assert sorted(manifest_of(account, jobs[0])[1:]) == [
        "a0.jpg",
        "a1.jpg",
        "a2.jpg",
        "a3.jpg",
        "a4.jpg",
        "late.jpg",
    ]


def test_images_after_a_close_start_the_next_generation(account: Account) -> None:
    p = pipeline(account, settings_for(account))
    promote(p.table)
    feed(p, [image_event(f"inference/rail-day/a{i}.jpg") for i in range(3)])
    p.clock.advance(121)
    p.closer.close_due_batches()
    # a redelivery of a closed image and two new images
    feed(
        p,
        [
            image_event("inference/rail-day/a0.jpg"),
            *(image_event(f"inference/rail-day/b{i}.jpg") for i in range(2)),
        ],
    )
    p.clock.advance(121)
    p.closer.close_due_batches()

    manifests = sorted(tuple(manifest_of(account, j)[1:]) for j in training_jobs(account))
    assert manifests == [("a0.jpg", "a1.jpg", "a2.jpg"), ("b0.jpg", "b1.jpg")]


def test_no_promoted_model_keeps_the_batch_waiting_with_one_alert(account: Account) -> None:
    p = pipeline(account, settings_for(account))
    feed(p, [image_event(f"inference/rail-new/a{i}.jpg") for i in range(3)])
    for _ in range(3):
        p.clock.advance(121)
        p.closer.close_due_batches()
    assert training_jobs(account) == []
    alerts = account.inbox.messages()
    assert len(alerts) == 1
    assert "waits for a promoted model" in alerts[0]["Subject"]
    assert alerts[0]["MessageAttributes"]["batch"]["Value"] == "rail-new"

    promote(p.table)
    p.clock.advance(60)
    p.closer.close_due_batches()
    jobs = training_jobs(account)
    assert len(jobs) == 1
    model = next(c for c in jobs[0]["InputDataConfig"] if c["ChannelName"] == "model")
    assert model["DataSource"]["S3DataSource"]["S3Uri"] == PROMOTED_ARTIFACT


def test_job_file_names_the_model_and_inference_overrides(account: Account) -> None:
    p = pipeline(account, settings_for(account))
    account.s3.put_object(
        Bucket=BUCKET,
        Key="inference/rail-b/_job.yaml",
        Body=b"model: s3://spotline-drop-123456789012/runs/old-run-aaaaaaaaaaaa/output/j/output/model.tar.gz\n"
        b"inference:\n  score_threshold: 0.45\n",
    )
    feed(p, [image_event("inference/rail-b/a.png"), image_event("inference/rail-b/_job.yaml", size=120)])
    p.clock.advance(121)
    p.closer.close_due_batches()
    [job] = training_jobs(account)
    assert job["HyperParameters"] == {"mode": "inference", "inference.score_threshold": "0.45"}
    model = next(c for c in job["InputDataConfig"] if c["ChannelName"] == "model")
    assert model["DataSource"]["S3DataSource"]["S3Uri"].endswith(
        "old-run-aaaaaaaaaaaa/output/j/output/model.tar.gz"
    )


def test_each_job_is_a_spot_inference_run_in_the_ledger_like_a_training_run(account: Account) -> None:
    p = pipeline(
        account, settings_for(account, SPOTLINE_INFERENCE_INSTANCE_TYPE="ml.g4dn.xlarge,ml.g5.xlarge")
    )
    promote(p.table)
    feed(p, [image_event(f"inference/rail-c/a{i}.jpg") for i in range(4)])
    p.clock.advance(121)
    [outcome] = p.closer.close_due_batches()
    [part] = outcome.runs
    run = p.ledger.get_run(part.run_id)
    assert run is not None and run.policy is not None and run.inference is not None
    assert run.first_request is not None
    assert run is not None
    assert run.kind == RunKind.INFERENCE and run.status == RunStatus.RUNNING and run.attempt == 1
    assert run.source.key == "inference/rail-c" and run.inference.batch == "rail-c"
    assert run.policy.ladder == ("ml.g4dn.xlarge", "ml.g5.xlarge") and run.policy.spot is True
    request = run.first_request
    assert request["TrainingJobName"] == part.job_name
    assert request["EnableManagedSpotTraining"] is True
    assert request["HyperParameters"]["mode"] == "inference"
    assert request["CheckpointConfig"]["S3Uri"] == f"s3://{BUCKET}/runs/{part.run_id}/checkpoints/"
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["model", "images"]
    assert request["InputDataConfig"][1]["DataSource"]["S3DataSource"]["S3DataType"] == "ManifestFile"
    attempt = p.ledger.get_attempt(part.run_id, 1)
    assert attempt is not None and attempt.status == AttemptStatus.IN_PROGRESS
    assert attempt.job_name == part.job_name
    job = account.sagemaker.describe_training_job(TrainingJobName=part.job_name)
    assert job["EnableManagedSpotTraining"] is True
    assert job["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"
    assert "VolumeKmsKeyId" not in request["ResourceConfig"]  # g4dn: local NVMe, encrypted by the hardware
    assert request["OutputDataConfig"]["KmsKeyId"] == p.settings.kms_key_arn
