"""The image-batch pipeline wired to the emulated account, with a clock the tests move by hand."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from spotline.domain.settings import Settings
from spotline.inference.intake import BatchCloser, ImageIntake
from spotline.ledger.batches import BatchLedger
from spotline.ledger.models import Models
from spotline.ledger.records import Promotion
from spotline.ledger.runs import RunLedger
from spotline.ledger.table import LedgerTable
from spotline.wiring import Wiring
from tests.support.aws_account import BUCKET, Account
from tests.support.events import s3_object_created

PROMOTED_ARTIFACT = f"s3://{BUCKET}/runs/rail-detector-0123456789ab/output/spotline-rail-detector-0123456789ab-a01/output/model.tar.gz"
T0 = 1_795_770_000.0


class Clock:
    """Seconds since the epoch, moved forward by the test (no sleeping, no wall clock)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Pipeline:
    settings: Settings
    clock: Clock
    table: LedgerTable
    batches: BatchLedger
    ledger: RunLedger
    intake: ImageIntake
    closer: BatchCloser


def settings_for(account: Account, **overrides: str) -> Settings:
    return Settings.from_env({**account.env, **overrides})


def pipeline(account: Account, settings: Settings, clock: Clock | None = None) -> Pipeline:
    """Intake and closer as the handlers build them, on the moto clients."""
    clock = clock or Clock()
    w = Wiring(settings, clients=account.client, clock=clock)
    return Pipeline(settings, clock, w.table, w.batches, w.ledger, w.image_intake, w.batch_closer)


def promote(table: LedgerTable, artifact: str = PROMOTED_ARTIFACT) -> None:
    """A promoted model, as the job-state function records one."""
    Models(table).promote(
        Promotion(
            run_id="rail-detector-0123456789ab",
            config_key="configs/rail-detector.yaml",
            job_name="spotline-rail-detector-0123456789ab-a01",
            model_artifact=artifact,
            metrics={"val/mAP50": 0.71},
            promoted_at="2026-11-26T22:00:00.000Z",
        ),
        order="2026-11-26T20:00:00.000Z#rail-detector-0123456789ab",
    )


def image_event(key: str, *, etag: str | None = None, size: int = 2_000_000) -> dict[str, Any]:
    return s3_object_created(BUCKET, key, etag=etag or f"{abs(hash(key)):032x}"[:32], size=size)


def messages(events: Iterable[dict[str, Any]], start: int = 0) -> list[tuple[str, str]]:
    """``(message id, body)`` pairs as SQS hands them to the intake function."""
    return [(f"msg-{start + i:07d}", json.dumps(e, ensure_ascii=False)) for i, e in enumerate(events)]


def feed(
    p: Pipeline, events: Sequence[dict[str, Any]], *, batch_size: int = 100, writer: str = "req"
) -> dict[str, Any]:
    """Deliver ``events`` in SQS batches of ``batch_size``; every outcome by message id."""
    outcomes: dict[str, Any] = {}
    for start in range(0, len(events), batch_size):
        chunk = messages(events[start : start + batch_size], start)
        outcomes.update(p.intake.record_messages(chunk, writer=f"{writer}-{start}", deadline=p.clock() + 900))
    return outcomes


def training_jobs(account: Account) -> list[dict[str, Any]]:
    """Every job in the emulated SageMaker, described."""
    names: list[str] = []
    kwargs: dict[str, Any] = {"MaxResults": 100}
    while True:
        page = account.sagemaker.list_training_jobs(**kwargs)
        names.extend(j["TrainingJobName"] for j in page["TrainingJobSummaries"])
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    return [account.sagemaker.describe_training_job(TrainingJobName=n) for n in sorted(names)]


def manifest_of(account: Account, job: dict[str, Any]) -> list[Any]:
    channel = next(c for c in job["InputDataConfig"] if c["ChannelName"] == "images")
    uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
    bucket, _, key = uri[5:].partition("/")
    return list(json.loads(account.s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
