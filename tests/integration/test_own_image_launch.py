"""A config that names an image of its own, on moto: launched from the allowed list, refused otherwise."""

from __future__ import annotations

import json
from typing import Any

import pytest

from spotline.domain.events import parse_object_created
from spotline.domain.settings import Settings
from spotline.domain.states import RunStatus
from spotline.ledger.models import Models
from spotline.ledger.runs import RunLedger
from spotline.ledger.table import LedgerTable
from tests.support.aws_account import ACCOUNT, BUCKET, REGION, TABLE, Account
from tests.support.launch import job_names, put_config, wiring
from tests.support.recovery import INTERRUPTED, Recovery, build_recovery, inbox_by_status, job

ALLOWED = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/rail-*"
OWN_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/rail-legacy:4.2"
FOREIGN_IMAGE = f"999999999999.dkr.ecr.{REGION}.amazonaws.com/rail-legacy:4.2"


def own_image_config(image: str) -> str:
    return f"""\
job:
  image: {image}
  metrics:
    val/mAP50: 'mAP@0\\.5=([0-9.]+)'
  checkpoints: true
  channels: {{train: datasets/rail/train/}}
hyperparameters: {{base_lr: 0.02, cfg: configs/faster_rcnn.yaml}}
environment: {{OMP_NUM_THREADS: 8}}
promote: {{metric: val/mAP50, min: 0.5}}
"""


def _settings(account: Account) -> Settings:
    return Settings.from_env({**account.env, "SPOTLINE_ALLOWED_IMAGES": ALLOWED})


def _launch(account: Account, key: str, body: str, times: int = 1) -> list[Any]:
    event = put_config(account, key, body)
    launcher = wiring(account, settings=_settings(account)).training_launcher
    return [launcher.launch_from_object(parse_object_created(event)) for _ in range(times)]


def test_an_allowed_image_of_your_own_runs_with_its_metrics_hyperparameters_and_environment(
    account: Account,
) -> None:
    [outcome] = _launch(account, "configs/legacy.yaml", own_image_config(OWN_IMAGE))
    assert outcome.action == "launched"
    [name] = job_names(account)
    job = account.sagemaker.describe_training_job(TrainingJobName=name)
    spec = job["AlgorithmSpecification"]
    assert spec["TrainingImage"] == OWN_IMAGE
    # moto answers DescribeTrainingJob with metric definitions of its own: the request is the ledger's.
    run = RunLedger(LedgerTable(TABLE, account.dynamodb)).get_run(outcome.run_id)
    assert run is not None and run.first_request is not None
    definitions = run.first_request["AlgorithmSpecification"]["MetricDefinitions"]
    assert definitions == [{"Name": "val/mAP50", "Regex": r"mAP@0\.5=([0-9.]+)"}]
    assert job["HyperParameters"] == {"base_lr": "0.02", "cfg": "configs/faster_rcnn.yaml"}
    assert run.first_request["Environment"]["OMP_NUM_THREADS"] == "8"
    channels = {c["ChannelName"] for c in job["InputDataConfig"]}
    assert channels == {"config", "train"}  # the user's YAML travels as the config channel


@pytest.mark.parametrize("image", [FOREIGN_IMAGE, f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/other:1"])
def test_an_image_outside_the_allowed_list_starts_nothing_and_alerts_once(
    account: Account, image: str
) -> None:
    first, again = _launch(account, "configs/legacy.yaml", own_image_config(image), times=2)
    assert (first.action, again.action) == ("rejected", "duplicate")
    assert job_names(account) == []
    ledger = RunLedger(LedgerTable(TABLE, account.dynamodb))
    run = ledger.get_run(first.run_id)
    assert run is not None and run.status == RunStatus.REJECTED
    [alert] = account.inbox.messages()
    assert alert["MessageAttributes"]["status"]["Value"] == "REJECTED"
    assert image in alert["Message"] and ALLOWED in alert["Message"]
    report = json.loads(
        account.s3.get_object(Bucket=BUCKET, Key=f"runs/{first.run_id}/rejection.json")["Body"].read()
    )
    [error] = [e for e in report["errors"] if e["key"] == "job.image"]
    assert ALLOWED in error["message"]


@pytest.fixture
def recovery(account: Account, monkeypatch: pytest.MonkeyPatch) -> Recovery:
    monkeypatch.setenv("SPOTLINE_ALLOWED_IMAGES", ALLOWED)
    return build_recovery(account, monkeypatch)


def test_a_run_of_your_own_image_is_recovered_and_promoted_by_its_own_metric_on_its_own_line(
    recovery: Recovery,
) -> None:
    run_id = recovery.drop_config(own_image_config(OWN_IMAGE), key="configs/legacy.yaml")
    [retrying] = recovery.end(job(run_id, 1), *INTERRUPTED, training_s=600, billable_s=180)
    assert retrying.action == "retrying"
    recovery.run_relaunches()
    relaunched = recovery.job(job(run_id, 2))
    assert relaunched["AlgorithmSpecification"]["TrainingImage"] == OWN_IMAGE
    [done] = recovery.end(
        job(run_id, 2), "Completed", training_s=300, billable_s=90, metrics={"val/mAP50": 0.71}
    )
    assert done.action == "succeeded"
    report = recovery.report(run_id)
    assert report["image"] == OWN_IMAGE and report["resumes"] is True
    assert report["results"]["promotion"]["gate"] == "passed"
    models = Models(LedgerTable(TABLE, recovery.account.dynamodb))
    promoted = models.promoted(OWN_IMAGE)
    assert promoted is not None and (promoted.run_id, promoted.image) == (run_id, OWN_IMAGE)
    assert models.promoted() is None  # inference's default model stays one of spotline's image
    inbox = inbox_by_status(recovery.account.inbox.messages())
    [succeeded] = inbox["SUCCEEDED"]
    assert "restarts from zero" not in inbox["RETRYING"][0]["Subject"]
    assert json.loads(succeeded["Message"])["savings"]["billable_s"] == 270
