"""The commands a user expects, against the running local stack: logs, cancel, alerts --follow."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from spotline_local.cli.main import main
from tests.e2e.conftest import E2E, TrainedRun, wait_for

pytestmark = pytest.mark.slow

LONG_CONFIG = """
job:
  spot: false
  max_attempts: 1
  max_runtime: 30m
  channels: {train: datasets/e2e/train/}
model: {depth: 1, width: 8, head_width: 16}
input: {size: 64}
dataloader: {num_workers: 0}
solver: {batch_size: 4, max_iter: 100000, warmup_iters: 2, log_period: 2}
checkpoint: {period_iters: 4, keep: 2}
"""


def test_logs_prints_the_container_log_of_every_attempt(
    e2e: E2E, trained_run: TrainedRun, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()  # what the stack printed before
    assert main(["logs", trained_run.run_id, "--workdir", str(e2e.stack.workdir)]) == 0
    out = capsys.readouterr().out
    first, second = out[out.index("== attempt 1:") :].split("== attempt 2:")
    assert first.startswith("== attempt 1: spotline-e2e-train-") and "MaxWaitTimeExceeded" in first
    assert "#metric train/loss=" in first and "#metric train/loss=" in second
    assert "resuming from" in second  # the relaunch started from the checkpoint
    assert main(["logs", trained_run.run_id, "--attempt", "2", "--workdir", str(e2e.stack.workdir)]) == 0
    assert "== attempt 1" not in capsys.readouterr().out


def test_cancel_stops_the_running_job_and_the_run_ends_cancelled(
    e2e: E2E, dataset: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key = "configs/e2e-cancel.yaml"
    e2e.put(key, LONG_CONFIG)
    run = wait_for("the run", lambda: e2e.run_for(key))
    name = f"spotline-{run.run_id}-a01"
    sagemaker = e2e.stack.sagemaker
    assert sagemaker is not None
    wait_for("the job to train", lambda: (name in sagemaker.jobs and sagemaker.jobs[name].last_step) or None)

    capsys.readouterr()
    assert main(["cancel", run.run_id, "--workdir", str(e2e.stack.workdir)]) == 0
    assert f"stopping job {name}" in capsys.readouterr().out
    finished = e2e.finished(run.run_id)
    assert finished.status == "CANCELLED"
    described = e2e.client("sagemaker").describe_training_job(TrainingJobName=name)
    assert described["TrainingJobStatus"] == "Stopped"
    assert main(["cancel", run.run_id, "--workdir", str(e2e.stack.workdir)]) == 0
    assert "nothing to cancel" in capsys.readouterr().out


def test_alerts_follow_prints_what_is_published_then_removes_its_queue(
    e2e: E2E, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs, sns = e2e.client("sqs"), e2e.client("sns")
    subscriptions_before = len(sns.list_subscriptions()["Subscriptions"])
    code: list[int] = []
    follower = threading.Thread(
        target=lambda: code.append(
            main(["alerts", "--follow", "--max", "1", "--workdir", str(e2e.stack.workdir)])
        )
    )
    follower.start()
    wait_for(
        "the follow queue",
        lambda: [u for u in sqs.list_queues().get("QueueUrls", []) if "spotline-alerts-follow-" in u] or None,
    )
    wait_for(
        "its subscription",
        lambda: len(sns.list_subscriptions()["Subscriptions"]) > subscriptions_before or None,
    )
    e2e.put("Configs/e2e-near-miss.yaml", "job: {}\n")  # ignored, and said so
    follower.join(timeout=180)
    assert not follower.is_alive() and code == [0]
    out = capsys.readouterr().out
    assert "spotline: ignored e2e-near-miss.yaml" in out and "move it to configs/e2e-near-miss.yaml" in out
    assert not [u for u in sqs.list_queues().get("QueueUrls", []) if "spotline-alerts-follow-" in u]
    assert len(sns.list_subscriptions()["Subscriptions"]) == subscriptions_before
