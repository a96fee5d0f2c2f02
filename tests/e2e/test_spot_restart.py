"""Managed Spot's own restart: the same job is interrupted, then resumes from its checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import E2E, INTERRUPT_AT, TRAIN_CONFIG, wait_for

pytestmark = pytest.mark.slow


def test_an_interrupted_job_restarted_by_sagemaker_needs_no_relaunch(
    e2e: E2E, dataset: dict[str, Path]
) -> None:
    key = "configs/e2e-restart.yaml"
    e2e.put(key, TRAIN_CONFIG.replace("promote: {metric: val/mAP50, min: 0.0}\n", ""))
    run = e2e.finished(wait_for("the run", lambda: e2e.run_for(key)).run_id)
    assert run.status == "SUCCEEDED"
    attempts = e2e.ledger.attempts(str(run.run_id))
    assert len(attempts) == 1
    job_name = str(attempts[0].job_name)
    job = e2e.client("sagemaker").describe_training_job(TrainingJobName=job_name)
    statuses = [t["Status"] for t in job["SecondaryStatusTransitions"]]
    assert statuses == [
        "Starting",
        "Downloading",
        "Training",
        "Interrupted",
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert job["BillableTimeInSeconds"] <= job["TrainingTimeInSeconds"]
    curves = e2e.curves(run.run_id)
    restarted = [m.step for m in curves.starts if m.attempt == 1]
    assert len(restarted) == 2 and restarted[0] == 0 and restarted[1] >= INTERRUPT_AT  # one attempt, twice
