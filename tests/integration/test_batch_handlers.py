"""The two handlers on the sample events: SQS-wrapped S3 events in, partial failures out; the sweep."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from spotline.ledger.batches import BatchLedger
from spotline.ledger.table import LedgerTable
from tests.support.aws_account import TABLE, Account
from tests.support.batches import promote
from tests.support.events import load_event


@dataclass
class Context:
    """The parts of the Lambda context the handlers read."""

    function_name: str = "spotline-image-intake"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-3:123456789012:function:spotline-image-intake"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def _handler(name: str) -> ModuleType:
    module = importlib.reload(importlib.import_module(f"handlers.{name}"))  # settings read at cold start
    return module


@pytest.fixture
def intake(account: Account, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Spotline")
    monkeypatch.setenv("SPOTLINE_MAX_IMAGE_BYTES", str(100 * 1024 * 1024))
    return _handler("image_intake")


def test_intake_records_images_once_and_reports_no_failures(account: Account, intake: ModuleType) -> None:
    response = intake.handler(load_event("sqs_s3_inference_batch"), Context())
    assert response == {"batchItemFailures": []}

    batches = BatchLedger(LedgerTable(TABLE, account.dynamodb))
    rail = batches.get_batch("rail-2026-11-27")
    assert (
        rail is not None and rail.image_count == 1
    )  # the image; its redelivery; not notes.txt nor the 700 MB tif
    assert batches.image_keys("rail-2026-11-27", 1) == ["km-042/IMG_0001.jpg"]
    unicode_batch = batches.get_batch("Voie 2 – défauts")
    assert unicode_batch is not None and unicode_batch.image_count == 1
    assert batches.image_keys("Voie 2 – défauts", 1) == ["Caméra avant/IMG 0007 (copie).JPG"]


def test_intake_retries_every_message_while_the_ledger_is_down(
    account: Account, intake: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = load_event("sqs_s3_inference_batch")
    account.dynamodb.delete_table(TableName=TABLE)  # every ledger write now fails
    # Every record fails, so the whole batch is retried: the images, and notes.txt and the oversized
    # tif too, whose place in the batch's list of skipped files could not be written either.
    with pytest.raises(BatchProcessingError, match="All records failed"):
        intake.handler(event, Context())


def test_closer_sweep_launches_a_quiet_batch(account: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOTLINE_BATCH_SETTLE_SECONDS", "0")
    intake = _handler("image_intake")
    intake.handler(load_event("sqs_s3_inference_batch"), Context())
    promote(LedgerTable(TABLE, account.dynamodb))
    closer = _handler("batch_closer")
    result = closer.handler(
        load_event("scheduled_batch_closer"), Context(function_name="spotline-batch-closer")
    )
    assert result["jobs_launched"] == 2
    assert len(account.sagemaker.list_training_jobs()["TrainingJobSummaries"]) == 2
