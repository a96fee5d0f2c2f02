"""A bad config is rejected with a report and one alert; a real client (the AWS CLI) starts a run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import E2E, wait_for
from tests.support.processes import run_watched

pytestmark = pytest.mark.slow

BAD_CONFIG = """
job:
  spot: false
  max_wait: 2h
  max_attempts: 0
  channels: {val: datasets/e2e/val/}
solver: {max_iter: -5}
"""

CLI_CONFIG = """
job:
  max_runtime: 10m
  max_attempts: 1
  channels: {train: datasets/e2e/train/}
"""


def test_a_bad_config_is_rejected_with_a_report_and_one_alert(e2e: E2E) -> None:
    key = "configs/e2e-bad.yaml"
    e2e.put(key, BAD_CONFIG)
    run = e2e.finished(wait_for("the rejection", lambda: e2e.run_for(key)).run_id)
    run_id = str(run.run_id)
    assert run.status == "REJECTED"
    assert e2e.ledger.attempts(run_id) == []
    jobs = e2e.client("sagemaker").list_training_jobs(NameContains=run_id)["TrainingJobSummaries"]
    assert jobs == []
    report = json.loads(e2e.read(f"runs/{run_id}/rejection.json"))
    problems = json.dumps(report)
    for path in ("job.max_attempts", "solver.max_iter"):
        assert path in problems
    alerts = wait_for("the rejection alert", lambda: e2e.alerts(lambda m: run_id in m["message"]) or None)
    assert len(alerts) == 1
    assert alerts[0]["subject"].startswith(f"spotline: {key} rejected")
    assert alerts[0]["attributes"] == {"kind": "run", "status": "REJECTED", "run_id": run_id}


def test_the_aws_cli_drops_a_config_and_the_run_starts(
    e2e: E2E, dataset: dict[str, Path], tmp_path: Path
) -> None:
    config = tmp_path / "e2e-cli.yaml"
    config.write_text(CLI_CONFIG)
    aws = Path(sys.executable).with_name("aws")
    env = {**os.environ, **e2e.stack.endpoint_env()}
    done = run_watched(
        [
            str(aws),
            "s3",
            "cp",
            str(config),
            f"s3://{e2e.bucket}/configs/e2e-cli.yaml",
            "--endpoint-url",
            e2e.stack.endpoint_env()["AWS_ENDPOINT_URL"],
        ],
        env=env,
    )
    assert done.returncode == 0, done.stderr
    run = wait_for("the run the CLI's upload started", lambda: e2e.run_for("configs/e2e-cli.yaml"))
    run_id = str(run.run_id)
    job = wait_for(
        "its first training job",
        lambda: next(
            iter(e2e.client("sagemaker").list_training_jobs(NameContains=run_id)["TrainingJobSummaries"]),
            None,
        ),
        60,
    )
    assert job["TrainingJobName"] == f"spotline-{run_id}-a01"
    # The local stack refuses it Spot capacity (a fault); with one attempt allowed the run fails and says why.
    finished = e2e.finished(run_id)
    assert finished.status == "FAILED"
    described = e2e.client("sagemaker").describe_training_job(TrainingJobName=job["TrainingJobName"])
    assert described["FailureReason"].startswith("CapacityError:")
    alerts = wait_for("the failure alert", lambda: e2e.alerts(lambda m: run_id in m["message"]) or None)
    assert any(m["attributes"].get("status") == "FAILED" for m in alerts)
