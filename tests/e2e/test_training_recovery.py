"""Config drop -> Spot interruption -> relaunch resumed from its checkpoint -> success -> SNS."""

from __future__ import annotations

import json

import pytest

from spotline.ledger.models import Models
from tests.e2e.conftest import E2E, INTERRUPT_AT, TrainedRun

pytestmark = pytest.mark.slow


def test_the_run_succeeds_on_its_second_attempt(e2e: E2E, trained_run: TrainedRun) -> None:
    run = e2e.ledger.get_run(trained_run.run_id)
    assert run is not None
    assert run.status == "SUCCEEDED"
    assert run.kind == "training"
    assert run.source.key == trained_run.key
    attempts = e2e.ledger.attempts(trained_run.run_id)
    assert [a.attempt for a in attempts] == [1, 2]
    first, second = attempts
    assert first.status == "INTERRUPTED"
    assert first.secondary_status == "MaxWaitTimeExceeded"
    assert second.status == "COMPLETED"
    assert first.job_name.endswith("-a01") and second.job_name.endswith("-a02")
    assert all(a.spot for a in attempts)
    # Spot: the local SageMaker bills less than it trains, as AWS does
    assert 0 < second.billable_s < second.training_s or second.training_s <= 1


def test_the_relaunch_resumed_from_the_checkpoint_not_from_zero(e2e: E2E, trained_run: TrainedRun) -> None:
    curves = e2e.curves(trained_run.run_id)
    (stop,) = curves.interruptions
    assert stop.attempt == 1 and stop.step >= INTERRUPT_AT
    resumed_at = curves.resumed_at(2)
    assert resumed_at == stop.step  # the checkpoint written on SIGTERM is where attempt 2 started
    (first_loss,) = curves.of("train/loss")[:1]
    (second_loss,) = [c for c in curves.of("train/loss") if c.attempt == 2]
    assert first_loss.attempt == 1 and max(s for s, _ in first_loss.points) <= stop.step
    assert min(s for s, _ in second_loss.points) > resumed_at


def test_the_report_shows_where_each_attempt_started_and_ended(e2e: E2E, trained_run: TrainedRun) -> None:
    # The local SageMaker syncs the checkpoint folder (pointer included) as SageMaker does; the
    # job-state function read the pointer after each attempt.
    prefix = f"runs/{trained_run.run_id}/checkpoints/"
    assert e2e.read(prefix + "latest").decode().strip() == "model_00000060.pt"
    first, second = e2e.report(trained_run.run_id)["attempts"]
    assert first["start_iteration"] == 0
    assert first["end_iteration"] >= INTERRUPT_AT  # the checkpoint written on SIGTERM reached S3
    assert first["reached_iteration"] == first["end_iteration"]  # so the interruption lost nothing
    assert first["work_lost_iterations"] == 0
    assert second["start_iteration"] == first["end_iteration"]
    assert (second["end_iteration"], second["reached_iteration"]) == (60, 60)  # solver.max_iter


def test_jobs_share_the_run_checkpoints_and_the_model_is_uploaded(e2e: E2E, trained_run: TrainedRun) -> None:
    sagemaker = e2e.client("sagemaker")
    first, second = (str(a.job_name) for a in e2e.ledger.attempts(trained_run.run_id))
    a01 = sagemaker.describe_training_job(TrainingJobName=first)
    a02 = sagemaker.describe_training_job(TrainingJobName=second)
    assert a01["CheckpointConfig"]["S3Uri"] == a02["CheckpointConfig"]["S3Uri"]
    assert [t["Status"] for t in a01["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Interrupted",
        "MaxWaitTimeExceeded",
    ]
    assert a02["TrainingJobStatus"] == "Completed"
    assert {m["MetricName"] for m in a02["FinalMetricDataList"]} >= {"train/loss", "val/mAP50"}
    run_prefix = f"runs/{trained_run.run_id}/"
    keys = e2e.keys(run_prefix)
    assert f"{run_prefix}config.yaml" in keys
    assert f"{run_prefix}report.json" in keys
    assert any(k.startswith(f"{run_prefix}checkpoints/") for k in keys)
    model_key = f"{run_prefix}output/{second}/output/model.tar.gz"
    assert a02["ModelArtifacts"]["S3ModelArtifacts"] == f"s3://{e2e.bucket}/{model_key}"
    assert model_key in keys
    report = json.loads(e2e.read(f"{run_prefix}report.json"))
    assert report["status"] == "SUCCEEDED"
    assert len(report["attempts"]) == 2
    # nothing was written where users write (it would trigger spotline again)
    assert not [
        k for k in e2e.keys("") if k.startswith(("configs/", "inference/")) and trained_run.run_id in k
    ]


def test_people_hear_about_the_retry_and_the_success_once(e2e: E2E, trained_run: TrainedRun) -> None:
    about = e2e.alerts(lambda m: trained_run.run_id in m["message"])
    subjects = [m["subject"] for m in about]
    assert [s for s in subjects if "retrying" in s] == ["spotline: e2e-train.yaml retrying (attempt 2)"]
    succeeded = [m for m in about if m["subject"] == "spotline: e2e-train.yaml succeeded"]
    assert len(succeeded) == 1
    body = json.loads(succeeded[0]["message"])
    assert body["status"] == "SUCCEEDED"
    assert body["attempts"] == 2
    assert succeeded[0]["attributes"]["status"] == "SUCCEEDED"


def test_the_model_is_promoted_for_inference(e2e: E2E, trained_run: TrainedRun) -> None:
    model = Models(e2e.table).promoted()
    assert model is not None
    assert model.run_id == trained_run.run_id
    assert model.model_artifact.endswith("/output/model.tar.gz")
