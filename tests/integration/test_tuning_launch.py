"""A config with a ``tuning:`` section becomes exactly one SageMaker tuning job on Spot (moto, real boto3),
or — for every rule SageMaker enforces — no job, a report naming the key and one alert."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
import yaml
from botocore.validate import ParamValidator

from spotline.config.tuning import TRIAL_CHECKPOINTS_ENV
from spotline.domain.naming import tuning_job_name
from spotline.domain.states import RunKind, RunStatus
from spotline.ledger.runs import RunLedger
from spotline.ledger.table import LedgerTable
from spotline.ledger.trials import TrialLedger
from spotline.metric_names import metric_definitions
from tests.support.aws_account import BUCKET, IMAGE_URI, JOB_PREFIX, KMS_KEY_ARN, ROLE_ARN, TABLE, Account
from tests.support.launch import deliver_twice_at_once, job_names, launch, put_config

TUNING_CONFIG = """\
job:
  instance_type: ml.g5.xlarge
  instance_count: 2
  max_runtime: 1h
  max_wait: 3h
  budget_usd: 60
  channels:
    train: datasets/rail/train/
    val: datasets/rail/val/
solver:
  max_iter: 2000
eval:
  period_iters: 500
tuning:
  objective: {metric: val/mAP50, goal: maximize}
  strategy: bayesian
  max_trials: 12
  parallel_trials: 3
  early_stopping: auto
  max_runtime: 20h
  seed: 7
  ranges:
    solver.base_lr: {min: 0.0003, max: 0.01, scale: log}
    solver.batch_size: {values: [16, 32, 64]}
    model.width: {min: 16, max: 48, type: integer}
"""


def _ledger(account: Account) -> RunLedger:
    return RunLedger(LedgerTable(TABLE, account.dynamodb))


def tuning_job_names(account: Account) -> list[str]:
    summaries = account.sagemaker.list_hyper_parameter_tuning_jobs(MaxResults=100)
    return sorted(s["HyperParameterTuningJobName"] for s in summaries["HyperParameterTuningJobSummaries"])


def _tags(account: Account, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in account.sagemaker.list_tags(ResourceArn=arn)["Tags"]}


def test_tuning_config_creates_one_spot_tuning_job_with_every_setting(account: Account) -> None:
    event = put_config(account, "configs/rail-tuning.yaml", TUNING_CONFIG)

    outcome = launch(account, event)

    assert outcome.action == "launched", outcome.reason
    run_id = outcome.run_id
    assert run_id is not None
    name = tuning_job_name(JOB_PREFIX, run_id)
    assert outcome.job_name == name and len(name) <= 32
    assert tuning_job_names(account) == [name]
    assert job_names(account) == []  # the tuner starts the trials, not spotline
    job = account.sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    tuning = job["HyperParameterTuningJobConfig"]
    assert tuning["Strategy"] == "Bayesian"
    assert tuning["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "val/mAP50"}
    assert tuning["ResourceLimits"] == {
        "MaxNumberOfTrainingJobs": 12,
        "MaxParallelTrainingJobs": 3,
        "MaxRuntimeInSeconds": 72000,
    }
    assert tuning["TrainingJobEarlyStoppingType"] == "Auto"
    assert tuning["RandomSeed"] == 7
    ranges = tuning["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"] == [
        {"Name": "solver.base_lr", "MinValue": "0.0003", "MaxValue": "0.01", "ScalingType": "Logarithmic"}
    ]
    assert ranges["IntegerParameterRanges"] == [
        {"Name": "model.width", "MinValue": "16", "MaxValue": "48", "ScalingType": "Auto"}
    ]
    assert ranges["CategoricalParameterRanges"] == [
        {"Name": "solver.batch_size", "Values": ["16", "32", "64"]}
    ]

    definition = job["TrainingJobDefinition"]
    assert definition["EnableManagedSpotTraining"] is True
    stopping = definition["StoppingCondition"]
    assert stopping == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 10800}
    assert stopping["MaxWaitTimeInSeconds"] >= stopping["MaxRuntimeInSeconds"]
    assert definition["CheckpointConfig"]["S3Uri"] == f"s3://{BUCKET}/runs/{run_id}/checkpoints/"
    assert definition["OutputDataConfig"] == {
        "S3OutputPath": f"s3://{BUCKET}/runs/{run_id}/output/",
        "KmsKeyId": KMS_KEY_ARN,
    }
    assert definition["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"
    assert definition["ResourceConfig"]["InstanceCount"] == 2
    assert definition["EnableNetworkIsolation"] is True
    assert definition["EnableInterContainerTrafficEncryption"] is True
    assert definition["RoleArn"] == ROLE_ARN
    assert definition["AlgorithmSpecification"]["TrainingImage"] == IMAGE_URI
    assert definition["AlgorithmSpecification"]["MetricDefinitions"] == metric_definitions()
    assert definition["RetryStrategy"] == {"MaximumRetryAttempts": 2}
    channels = {c["ChannelName"] for c in definition["InputDataConfig"]}
    assert channels == {"config", "train", "val"}
    tags = _tags(account, job["HyperParameterTuningJobArn"])
    assert tags == {
        "spotline:run-id": run_id,
        "spotline:attempt": "1",
        "spotline:source-key": "configs/rail-tuning.yaml",
        "spotline:kind": "tuning",
    }

    run = _ledger(account).get_run(run_id)
    assert run is not None
    assert (run.kind, run.status, run.tuning_jobs) == (RunKind.TUNING, RunStatus.RUNNING, (name,))
    assert run.policy is not None and run.policy.objective_metric == "val/mAP50"
    # The request as sent (moto keeps not all of it): each trial keeps its checkpoints apart.
    request = run.first_request
    assert request is not None
    assert request["TrainingJobDefinition"]["Environment"][TRIAL_CHECKPOINTS_ENV] == "1"
    assert request["TrainingJobDefinition"]["Environment"]["SPOTLINE_RUN_ID"] == run_id
    # Whatever reports on the tuning job finds its run through the ledger.
    assert TrialLedger(LedgerTable(TABLE, account.dynamodb)).run_of_tuning_job(name) == run_id
    assert account.inbox.messages() == []


def test_tuning_request_passes_botocore_validation_against_the_sagemaker_model(account: Account) -> None:
    outcome = launch(account, put_config(account, "configs/rail-tuning.yaml", TUNING_CONFIG))
    assert outcome.run_id is not None
    run = _ledger(account).get_run(outcome.run_id)
    assert run is not None and run.first_request is not None
    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.operation_model("CreateHyperParameterTuningJob").input_shape
    report = ParamValidator().validate(run.first_request, shape)
    assert not report.has_errors(), report.generate_report()


def test_tuning_event_three_times_is_one_tuning_job(account: Account) -> None:
    event = put_config(account, "configs/rail-tuning.yaml", TUNING_CONFIG)
    outcomes = [launch(account, event) for _ in range(3)]
    assert [o.action for o in outcomes] == ["launched", "duplicate", "duplicate"]
    assert len(tuning_job_names(account)) == 1
    assert job_names(account) == []
    assert account.inbox.messages() == []


def test_tuning_event_twice_concurrently_is_one_tuning_job(account: Account) -> None:
    event = put_config(account, "configs/rail-tuning.yaml", TUNING_CONFIG)
    results = deliver_twice_at_once(account, event)

    assert results in (["duplicate", "launched"], ["launched", "retry-later"])
    assert launch(account, event).action == "duplicate"
    assert len(tuning_job_names(account)) == 1


def _with_tuning(change: dict[str, Any] | None = None, **job: Any) -> str:
    """TUNING_CONFIG with ``job`` settings and ``change``: tuning keys (``eval/...``: from the top)."""
    document = yaml.safe_load(TUNING_CONFIG)
    document["job"] |= job
    for key, value in (change or {}).items():
        target = document if key.startswith("eval/") else document["tuning"]
        *parents, last = key.split("/")
        for part in parents:
            target = target.setdefault(part, {})
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value
    return yaml.safe_dump(document, sort_keys=False)


MANY_RANGES = {f"solver.k{i}": {"values": [1, 2]} for i in range(31)}

# Each: a tuning section SageMaker (or the container a trial runs) would refuse, and the key the
# report names. Where each rule comes from is cited in spotline/config/tuning.py.
BAD_TUNING_SECTIONS: list[tuple[str, str, dict[str, Any]]] = [
    ("objective-not-reported", "tuning.objective.metric", {"objective": {"metric": "val/mAP75"}}),
    ("objective-goal", "tuning.objective.goal", {"objective": {"metric": "val/mAP50", "goal": "up"}}),
    ("strategy-unknown", "tuning.strategy", {"strategy": "genetic"}),
    ("grid-with-numeric-range", "tuning.ranges", {"strategy": "grid", "max_trials": None}),
    (
        "grid-trials-not-the-combinations",
        "tuning.max_trials",
        {"strategy": "grid", "ranges": {"solver.batch_size": {"values": [16, 32]}}, "max_trials": 5},
    ),
    ("bayesian-above-750-trials", "tuning.max_trials", {"max_trials": 751}),
    ("no-parallel-trial", "tuning.parallel_trials", {"parallel_trials": 0}),
    ("parallel-above-100", "tuning.parallel_trials", {"parallel_trials": 101}),
    ("runtime-below-120s", "tuning.max_runtime", {"max_runtime": "60s"}),
    ("runtime-above-30-days", "tuning.max_runtime", {"max_runtime": "31d"}),
    ("hyperband-with-early-stopping", "tuning.early_stopping", {"strategy": "hyperband"}),
    (
        "hyperband-tunes-the-resource",
        "tuning.ranges.solver.max_iter",
        {
            "strategy": "hyperband",
            "early_stopping": "off",
            "ranges": {"solver.max_iter": {"min": 100, "max": 900, "type": "integer"}},
        },
    ),
    (
        "log-scale-through-zero",
        "tuning.ranges.solver.base_lr.min",
        {"ranges": {"solver.base_lr": {"min": 0, "max": 0.01, "scale": "log"}}},
    ),
    (
        "reverse-log-reaching-one",
        "tuning.ranges.solver.momentum.scale",
        {"ranges": {"solver.momentum": {"min": 0.5, "max": 1.0, "scale": "reverse_log"}}},
    ),
    (
        "reverse-log-integer",
        "tuning.ranges.model.width.scale",
        {"ranges": {"model.width": {"min": 16, "max": 48, "type": "integer", "scale": "reverse_log"}}},
    ),
    (
        "empty-range",
        "tuning.ranges.solver.base_lr.max",
        {"ranges": {"solver.base_lr": {"min": 0.01, "max": 0.01}}},
    ),
    ("over-30-ranges", "tuning.ranges", {"ranges": MANY_RANGES}),
    (
        "over-30-categorical-values",
        "tuning.ranges.solver.batch_size.values",
        {"ranges": {"solver.batch_size": {"values": list(range(1, 32))}}},
    ),
    ("no-ranges", "tuning.ranges", {"ranges": None}),
    (
        "range-not-a-config-key",
        "tuning.ranges.solver.base_lrr",
        {"ranges": {"solver.base_lrr": {"min": 0.001, "max": 0.01}}},
    ),
    (
        "range-changes-the-job",
        "tuning.ranges.job.instance_type",
        {"ranges": {"job.instance_type": {"values": ["ml.g5.xlarge", "ml.g4dn.xlarge"]}}},
    ),
    (
        "trial-the-container-refuses",
        "tuning.ranges.model.width",
        {"ranges": {"model.width": {"min": 16, "max": 4000, "type": "integer"}}},
    ),
    (
        "early-stopping-without-intermediate-objective",
        "tuning.objective.metric",
        {"eval/period_iters": 0},
    ),
    (
        "warm-start-six-parents",
        "tuning.warm_start.from",
        {"warm_start": {"from": [f"parent-{i}" for i in range(6)]}},
    ),
    ("warm-start-unknown-parent", "tuning.warm_start.from[0]", {"warm_start": {"from": ["no-such-run"]}}),
    (
        "warm-start-with-grid",
        "tuning.warm_start",
        {
            "strategy": "grid",
            "max_trials": None,
            "ranges": {"solver.batch_size": {"values": [16, 32]}},
            "warm_start": {"from": ["earlier-run"]},
        },
    ),
    ("seed-negative", "tuning.seed", {"seed": -1}),
]


@pytest.mark.parametrize(
    ("change", "key"), [(c, k) for _, k, c in BAD_TUNING_SECTIONS], ids=[n for n, _, _ in BAD_TUNING_SECTIONS]
)
def test_bad_tuning_section_gives_no_job_a_report_and_one_alert(
    account: Account, change: dict[str, Any], key: str
) -> None:
    event = put_config(account, "configs/bad-tuning.yaml", _with_tuning(change))

    outcome = launch(account, event)

    assert outcome.action == "rejected"
    assert tuning_job_names(account) == [] and job_names(account) == []
    report = json.loads(
        account.s3.get_object(Bucket=BUCKET, Key=f"runs/{outcome.run_id}/rejection.json")["Body"].read()
    )
    assert key in [e["key"] for e in report["errors"]], report["errors"]
    alerts = account.inbox.messages()
    assert len(alerts) == 1
    assert alerts[0]["Subject"].startswith("spotline: configs/bad-tuning.yaml rejected")
    run = _ledger(account).get_run(str(outcome.run_id))
    assert run is not None and run.status == RunStatus.REJECTED
    # Delivered again: still no job and no second alert.
    assert launch(account, event).action == "duplicate"
    assert account.inbox.messages() == [] and tuning_job_names(account) == []


@pytest.mark.parametrize(
    "job", [{"on_demand_fallback": True}, {"fallback_instance_types": ["ml.g4dn.xlarge"]}], ids=str
)
def test_tuning_with_what_only_spotline_relaunches_do_is_refused(
    account: Account, job: dict[str, Any]
) -> None:
    outcome = launch(account, put_config(account, "configs/bad-tuning.yaml", _with_tuning(**job)))
    assert outcome.action == "rejected"
    assert tuning_job_names(account) == []
    assert len(account.inbox.messages()) == 1
