"""Dropping configs into the emulated bucket and running the launch function on the event S3 sends."""

from __future__ import annotations

import threading
from typing import Any

from spotline.domain.events import parse_object_created
from spotline.domain.settings import Settings
from spotline.training.launch import LaunchInProgress, LaunchOutcome, TrainingLauncher
from spotline.wiring import Wiring
from tests.support.aws_account import BUCKET, Account
from tests.support.events import s3_object_created

GOOD_CONFIG = """\
job:
  instance_type: ml.g4dn.xlarge
  fallback_instance_types: [ml.g5.xlarge, ml.p3.2xlarge]
  instance_count: 2
  max_runtime: 2h
  max_wait: 6h
  max_attempts: 4
  on_demand_fallback: true
  budget_usd: 40
  volume_size_gb: 100
  input_mode: FastFile
  channels:
    train: datasets/rail/train/
    val: s3://spotline-drop-123456789012/datasets/rail/val/
promote:
  metric: val/mAP50
  min: 0.6
"""


def put_config(account: Account, key: str, body: bytes | str) -> dict[str, Any]:
    """Upload a config and return the EventBridge event S3 sends for it."""
    data = body.encode() if isinstance(body, str) else body
    response = account.s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    return s3_object_created(
        BUCKET, key, etag=response["ETag"].strip('"'), size=len(data), version_id=response.get("VersionId")
    )


def wiring(account: Account, sagemaker: Any | None = None, settings: Settings | None = None) -> Wiring:
    """The flows on the account's clients (``sagemaker`` replaces its SageMaker client)."""
    clients = {"sagemaker": sagemaker} if sagemaker is not None else {}
    return Wiring(
        settings or Settings.from_env(account.env),
        clients=lambda service: clients.get(service) or account.client(service),
    )


def make_launcher(account: Account, sagemaker: Any | None = None) -> TrainingLauncher:
    return wiring(account, sagemaker).training_launcher


def launch(account: Account, event: dict[str, Any], sagemaker: Any | None = None) -> LaunchOutcome:
    return make_launcher(account, sagemaker).launch_from_object(parse_object_created(event))


def job_names(account: Account) -> list[str]:
    summaries = account.sagemaker.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
    return sorted(s["TrainingJobName"] for s in summaries)


def deliver_twice_at_once(account: Account, event: dict[str, Any]) -> list[str]:
    """The same event to two launch invocations at the same moment: their actions, sorted
    (``retry-later``: the one that found the other's launch lease and was told to come back)."""
    barrier = threading.Barrier(2)
    results: list[str] = []

    def deliver() -> None:
        barrier.wait()
        try:
            results.append(launch(account, event).action)
        except LaunchInProgress:
            results.append("retry-later")

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(results)
