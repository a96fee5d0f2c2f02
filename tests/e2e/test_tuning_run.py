"""A config with a tuning: section on the local stack: 6 Spot trials, 2 at a time, one interrupted and
restarted by Managed Spot, the best trial promoted and used by a later inference batch, one alert."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from spotline.domain.states import RunKind
from spotline.ledger.records import Run
from spotline.ledger.trials import TrialLedger
from spotline.metric_names import METRICS_FILE
from spotline.reports.metrics import parse_metrics
from spotline_local.cli.main import main
from tests.e2e.conftest import E2E, INTERRUPT_AT, TRAIN_CONFIG, wait_for

pytestmark = pytest.mark.slow

KEY = "configs/e2e-tune.yaml"
BATCH = "e2e-after-tuning"
TRIALS, PARALLEL = 6, 2
TUNING_CONFIG = (
    TRAIN_CONFIG.replace("  fallback_instance_types: [ml.g5.xlarge]\n", "").replace(
        "solver: {batch_size: 4, max_iter: 60,", "solver: {batch_size: 4, max_iter: 16,"
    )
    + f"""tuning:
  objective: {{metric: train/loss, goal: minimize}}
  strategy: random
  max_trials: {TRIALS}
  parallel_trials: {PARALLEL}
  seed: 11
  ranges:
    solver.base_lr: {{min: 0.0005, max: 0.05, scale: log}}
    model.width: {{values: [8, 12]}}
"""
)


def _overlap(trials: list[dict[str, float]]) -> int:
    """The most trials that were running at one moment."""
    edges = sorted([(t["start"], 1) for t in trials] + [(t["end"], -1) for t in trials])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def _tuning_run(e2e: E2E, key: str) -> Run | None:
    run = e2e.run_for(key)
    return run if run is not None and (run.kind == RunKind.TUNING or run.status != "PENDING") else None


def test_a_tuning_config_runs_its_trials_on_spot_and_promotes_the_best(
    e2e: E2E, dataset: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    e2e.put(KEY, TUNING_CONFIG)
    # The launch claims the run before it reads the file (kind training), then records its kind.
    started = wait_for("the launch function to record the tuning run", lambda: _tuning_run(e2e, KEY))
    assert started.kind == RunKind.TUNING, (started.status, started.reason, started.errors)
    run = e2e.finished(started.run_id)
    assert run.status == "SUCCEEDED", run.reason
    (tuning_job,) = run.tuning_jobs
    sagemaker = e2e.client("sagemaker")

    described = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_job)
    assert described["HyperParameterTuningJobStatus"] == "Completed"
    assert described["TrainingJobStatusCounters"]["Completed"] == TRIALS
    assert described["ObjectiveStatusCounters"] == {"Succeeded": TRIALS, "Pending": 0, "Failed": 0}
    summaries = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning_job, MaxResults=100
    )["TrainingJobSummaries"]
    assert len(summaries) == TRIALS
    jobs = {
        s["TrainingJobName"]: sagemaker.describe_training_job(TrainingJobName=s["TrainingJobName"])
        for s in summaries
    }
    assert all(
        j["EnableManagedSpotTraining"] and j["TuningJobArn"] == described["HyperParameterTuningJobArn"]
        for j in jobs.values()
    )
    spans = [
        {"start": j["TrainingStartTime"].timestamp(), "end": j["TrainingEndTime"].timestamp()}
        for j in jobs.values()
    ]
    assert _overlap(spans) <= PARALLEL

    # One trial was interrupted and restarted by Managed Spot, from its own checkpoints.
    restarted = [
        name
        for name, j in jobs.items()
        if [t["Status"] for t in j["SecondaryStatusTransitions"]].count("Interrupted") == 1
    ]
    assert len(restarted) == 1 and restarted[0].split("-")[-2] == "002"
    checkpoints = e2e.keys(f"runs/{run.run_id}/checkpoints/")
    assert {k.split("/")[3] for k in checkpoints} == set(jobs)  # one folder per trial, none shared
    curves = parse_metrics(e2e.read(f"runs/{run.run_id}/checkpoints/{restarted[0]}/{METRICS_FILE}"))
    starts = [m.step for m in curves.starts]
    assert len(starts) == 2 and starts[0] == 0 and 0 < starts[1] <= INTERRUPT_AT

    # Every trial is recorded, and the best one (the lowest loss) is the promoted model.
    trials = TrialLedger(e2e.table).trials(run.run_id)
    assert sorted(t.job_name for t in trials) == sorted(jobs)
    assert all(t.status == "COMPLETED" and t.billable_s <= t.training_s for t in trials)
    best = min(trials, key=lambda t: t.objective if t.objective is not None else math.inf)
    assert described["BestTrainingJob"]["TrainingJobName"] == best.job_name
    report = e2e.report(run.run_id)
    assert report["results"]["tuning"]["best_trial"]["job_name"] == best.job_name
    assert report["results"]["promotion"]["promoted"] is True
    assert sorted(t["job_name"] for t in report["trials"]) == sorted(jobs)
    costs = [c["estimated_cost_usd"] for c in report["savings"]["attempts"]]
    assert len(costs) == TRIALS and all(c is not None for c in costs)
    assert math.isclose(sum(costs), report["savings"]["estimated_cost_usd"], abs_tol=1e-3)
    on_demand = sum(c["on_demand_usd"] for c in report["savings"]["attempts"])
    assert math.isclose(on_demand, report["savings"]["on_demand_usd"], abs_tol=1e-3)

    # spotline status shows the run's trials and its best one.
    assert main(["status", "--workdir", str(e2e.stack.workdir)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(run.run_id))
    assert "tuning" in row and "SUCCEEDED" in row and f"{TRIALS} trials" in row and "%" in row
    assert main(["status", run.run_id, "--workdir", str(e2e.stack.workdir)]) == 0
    detail = capsys.readouterr().out
    assert all(name in detail for name in jobs) and "solver.base_lr" in detail
    assert f"best       {best.job_name}: train/loss" in detail and "promoted   yes" in detail

    def of_run(message: dict[str, Any]) -> bool:
        return json.loads(message["message"]).get("run_id") == run.run_id

    alerts = wait_for("the run's alert", lambda: e2e.alerts(of_run) or None)
    assert [json.loads(a["message"])["status"] for a in alerts] == ["SUCCEEDED"]

    # A later inference batch uses the best trial's model; the run sent nothing more.
    images = sorted(dataset["unlabelled"].glob("*.jpg"))[:2]
    s3 = e2e.client("s3")
    for path in images:
        s3.upload_file(str(path), e2e.bucket, f"inference/{BATCH}/{path.name}")
    e2e.put(f"inference/{BATCH}/_READY", b"")

    started_batch = wait_for("the batch's inference run", lambda: e2e.inference_run_for(BATCH))
    batch_run = e2e.finished(started_batch.run_id)
    assert batch_run.status == "SUCCEEDED"
    (attempt,) = e2e.ledger.attempts(batch_run.run_id)
    job = sagemaker.describe_training_job(TrainingJobName=attempt.job_name)
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in job["InputDataConfig"]}
    assert channels["model"]["S3Uri"] == best.model_artifact
    assert [json.loads(a["message"])["status"] for a in e2e.alerts(of_run)] == ["SUCCEEDED"]


def test_a_trial_lost_to_spot_capacity_is_run_again_in_one_warm_started_follow_up(
    e2e: E2E, dataset: dict[str, Path]
) -> None:
    key = "configs/e2e-lost.yaml"
    config = TUNING_CONFIG.replace(f"max_trials: {TRIALS}", "max_trials: 2").replace(
        "  seed: 11\n", "  seed: 11\n  follow_up_lost_trials: true\n"
    )
    e2e.put(key, config.replace("max_iter: 16,", "max_iter: 6,"))
    started = wait_for("the launch function to record the tuning run", lambda: e2e.run_for(key))
    run = e2e.finished(started.run_id)
    assert run.status == "SUCCEEDED", run.reason
    first, follow_up = run.tuning_jobs
    sagemaker = e2e.client("sagemaker")
    described = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=follow_up)
    assert described["WarmStartConfig"] == {
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": first}],
        "WarmStartType": "IdenticalDataAndAlgorithm",
    }
    assert described["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 1
    trials = TrialLedger(e2e.table).trials(run.run_id)
    assert sorted((t.tuning_job, t.status.value) for t in trials) == sorted(
        [(first, "COMPLETED"), (first, "LOST_TO_SPOT"), (follow_up, "COMPLETED")]
    )
    report = e2e.report(run.run_id)
    assert report["results"]["tuning"]["lost_to_spot"] == 1
    assert f"ran again in the follow-up {follow_up}" in report["results"]["tuning"]["shortfall"]

    def of_run(message: dict[str, Any]) -> bool:
        return json.loads(message["message"]).get("run_id") == run.run_id

    def statuses() -> list[str] | None:
        sent = [json.loads(a["message"])["status"] for a in e2e.alerts(of_run)]
        return sent if len(sent) >= 2 else None

    assert sorted(wait_for("the run's two alerts", statuses)) == ["RETRYING", "SUCCEEDED"]
    assert len(e2e.alerts(of_run)) == 2  # the follow-up announced once, the end once


def test_a_deleted_tuning_config_stops_its_tuning_job_and_starts_no_more_trials(
    e2e: E2E, dataset: dict[str, Path]
) -> None:
    key = "configs/e2e-gone.yaml"
    config = TUNING_CONFIG.replace(f"max_trials: {TRIALS}", "max_trials: 4").replace(
        f"parallel_trials: {PARALLEL}", "parallel_trials: 1"
    )
    version = e2e.put(key, config)["VersionId"]

    def running() -> Run | None:
        run = e2e.run_for(key)
        return run if run is not None and run.status == "RUNNING" else None

    started = wait_for("the tuning run to start", running)
    # The version itself (the emulated S3 sends no event for a delete marker).
    e2e.client("s3").delete_object(Bucket=e2e.bucket, Key=key, VersionId=version)
    run = e2e.finished(started.run_id)
    assert run.status == "CANCELLED", run.reason
    (tuning_job,) = run.tuning_jobs
    sagemaker = e2e.client("sagemaker")
    described = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_job)
    assert described["HyperParameterTuningJobStatus"] == "Stopped"
    summaries = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning_job, MaxResults=100
    )["TrainingJobSummaries"]
    assert 1 <= len(summaries) < 4  # the tuner started no trial after the stop
    assert all(s["TrainingJobStatus"] in ("Completed", "Stopped") for s in summaries)

    def of_run(message: dict[str, Any]) -> bool:
        return json.loads(message["message"]).get("run_id") == run.run_id

    alerts = wait_for("the run's alert", lambda: e2e.alerts(of_run) or None)
    assert [json.loads(a["message"])["status"] for a in alerts] == ["CANCELLED"]
