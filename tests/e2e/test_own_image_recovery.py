"""An image of your own on the local stack: the NumPy example dropped as a config, end to end.

Its config (examples/numpy_trainer/rail-geometry.yaml, data moved under datasets/e2e-geometry/) is
dropped; the local SageMaker runs the command the example's images file maps its image to and
interrupts attempt 1 on one of its own metric lines; spotline relaunches it, attempt 2 resumes from
the image's own checkpoint (its log says so), completes, is promoted by the image's own metric
regex on the image's own line, and the alert and report carry its savings.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from spotline.ledger.models import Models
from tests.e2e.conftest import E2E, EXAMPLE, wait_for

pytestmark = pytest.mark.slow

KEY = "configs/e2e-geometry.yaml"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/rail-geometry:1.0"


def _config() -> str:
    text = (EXAMPLE / "rail-geometry.yaml").read_text()
    text = text.replace("datasets/rail-geometry/", "datasets/e2e-geometry/")
    text = text.replace("  max_attempts: 3\n", "  max_attempts: 3\n  retry_backoff: 1s\n")
    hyperparameters = (
        "hyperparameters: {epochs: 3, batch_size: 32, learning_rate: 0.5,"
        " checkpoint_every: 4, step_delay_s: 0.05}"
    )
    text, replaced = re.subn(r"^hyperparameters: .*$", hyperparameters, text, flags=re.M)
    assert replaced == 1 and IMAGE in text
    return text


def _container_log(e2e: E2E, job_name: str) -> str:
    return (e2e.stack.workdir / "jobs" / job_name / "container.log").read_text()


def test_the_example_image_is_interrupted_resumed_from_its_checkpoint_and_promoted(
    e2e: E2E, tmp_path: Path
) -> None:
    data = tmp_path / "geometry"
    subprocess.run([sys.executable, str(EXAMPLE / "train.py"), "synth", str(data)], check=True)
    for split in ("train", "valid"):
        e2e.client("s3").upload_file(
            str(data / split / "geometry.csv"), e2e.bucket, f"datasets/e2e-geometry/{split}/geometry.csv"
        )
    e2e.put(KEY, _config())
    started = wait_for("the launch function to record the run", lambda: e2e.run_for(KEY), 60)
    run = e2e.finished(started.run_id)
    assert run.status == "SUCCEEDED", run

    first, second = e2e.ledger.attempts(run.run_id)
    assert (first.status, first.secondary_status, second.status) == (
        "INTERRUPTED",
        "MaxWaitTimeExceeded",
        "COMPLETED",
    )
    sagemaker = e2e.client("sagemaker")
    a01 = sagemaker.describe_training_job(TrainingJobName=first.job_name)
    a02 = sagemaker.describe_training_job(TrainingJobName=second.job_name)
    assert (
        a01["AlgorithmSpecification"]["TrainingImage"]
        == a02["AlgorithmSpecification"]["TrainingImage"]
        == IMAGE
    )
    assert a01["CheckpointConfig"] == a02["CheckpointConfig"]

    # Attempt 1 stopped on SIGTERM after its step-12 line and saved; attempt 2 resumed from that file.
    log1, log2 = _container_log(e2e, str(first.job_name)), _container_log(e2e, str(second.job_name))
    assert "no checkpoint: starting from zero" in log1
    stopped = int(re.findall(r"stopped at step (\d+)", log1)[0])
    assert stopped >= 12
    assert f"resuming from checkpoint checkpoint_{stopped:08d}.npz" in log2
    assert "starting from zero" not in log2
    steps = [int(s) for s in re.findall(r"^#metric train/loss=\S+ step=(\d+)$", log2, flags=re.M)]
    assert steps and steps[0] == stopped + 1 and steps[-1] == 39  # 3 epochs of 13 batches, none redone

    # Promoted by its own regex (job.metrics valid/accuracy), on its image's own line.
    final = {m["MetricName"]: m["Value"] for m in a02["FinalMetricDataList"]}
    assert set(final) == {"train/loss", "valid/accuracy"} and final["valid/accuracy"] >= 0.8
    promoted = Models(e2e.table).promoted(IMAGE)
    assert promoted is not None and promoted.run_id == run.run_id
    assert promoted.gate["metric"] == "valid/accuracy"
    default = Models(e2e.table).promoted()
    assert default is None or default.run_id != run.run_id  # inference's model stays spotline's

    report = e2e.report(run.run_id)
    assert report["status"] == "SUCCEEDED" and report["image"] == IMAGE and report["resumes"] is True
    assert report["results"]["promotion"]["gate"] == "passed"
    savings = report["savings"]
    assert savings["billable_s"] < savings["training_s"] and savings["savings_usd"] > 0

    about = e2e.alerts(lambda m: run.run_id in m["message"])
    subjects = [m["subject"] for m in about]
    assert [s for s in subjects if "retrying" in s] == ["spotline: e2e-geometry.yaml retrying (attempt 2)"]
    [succeeded] = [m for m in about if m["subject"] == "spotline: e2e-geometry.yaml succeeded"]
    body = json.loads(succeeded["message"])
    assert body["attempts"] == 2 and body["savings"] == {
        k: v for k, v in savings.items() if k not in ("unpriced_types", "attempts", "price_source")
    }
    assert body["savings"]["savings_usd"] > 0
