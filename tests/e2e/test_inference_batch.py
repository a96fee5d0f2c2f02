"""A folder of images -> one batch -> a Spot inference job with the promoted model -> results and an alert."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import E2E, TrainedRun, wait_for

pytestmark = pytest.mark.slow

BATCH = "e2e-line-7"


def test_an_image_folder_becomes_inference_results(
    e2e: E2E, trained_run: TrainedRun, dataset: dict[str, Path]
) -> None:
    images = sorted(dataset["unlabelled"].glob("*.jpg"))
    s3 = e2e.client("s3")
    for path in images:
        s3.upload_file(str(path), e2e.bucket, f"inference/{BATCH}/{path.name}")
    e2e.put(f"inference/{BATCH}/_READY", b"")

    started = wait_for(
        "the batch to close and its inference run to start", lambda: e2e.inference_run_for(BATCH)
    )
    run = e2e.finished(started.run_id)
    assert run.status == "SUCCEEDED"

    attempts = e2e.ledger.attempts(str(run.run_id))
    assert len(attempts) == 1
    job = e2e.client("sagemaker").describe_training_job(TrainingJobName=attempts[0].job_name)
    assert job["HyperParameters"].get("mode") == "inference"
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in job["InputDataConfig"]}
    assert channels["images"]["S3DataType"] == "ManifestFile"
    assert channels["model"]["S3Uri"].startswith(f"s3://{e2e.bucket}/runs/{trained_run.run_id}/")

    def results_written() -> list[str] | None:
        keys = e2e.keys(f"results/{BATCH}/")
        return keys if f"results/{BATCH}/summary.json" in keys else None

    wait_for("the results under results/", results_written)
    predictions = [
        json.loads(line)
        for line in e2e.read(f"results/{BATCH}/predictions.jsonl").decode().splitlines()
        if line.strip()
    ]
    assert sorted(Path(p["image"]).name for p in predictions) == [p.name for p in images]
    summary = json.loads(e2e.read(f"results/{BATCH}/summary.json"))
    assert summary["images"] == len(images)
    with_defects = sum(1 for p in predictions if p.get("detections"))
    assert summary["images_with_defects"] == with_defects

    alerts = wait_for(
        "the batch's alert", lambda: e2e.alerts(lambda m: m["subject"].startswith(BATCH)) or None
    )
    assert len(alerts) == 1
    assert f"{with_defects} of {len(images)} images" in alerts[0]["subject"]
