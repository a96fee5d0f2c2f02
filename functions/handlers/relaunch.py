"""RelaunchFunction: the SQS relaunch delay queue -> the next attempt of a run, from its checkpoints."""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from spotline.adapters.relaunch_queue import RelaunchMessageError, RelaunchRequest
from spotline.domain.settings import Settings
from spotline.runs.publish import METRICS_NAMESPACE
from spotline.runs.relaunch import Relauncher
from spotline.wiring import Wiring

SETTINGS = Settings.from_env()
logger = Logger()
metrics = Metrics(namespace=METRICS_NAMESPACE)
processor = BatchProcessor(event_type=EventType.SQS)


@functools.cache
def relauncher() -> Relauncher:
    return Wiring(SETTINGS, metrics=metrics).relauncher


def relaunch_record(record: SQSRecord) -> None:
    try:
        request = RelaunchRequest.from_body(record.body)
    except RelaunchMessageError as e:
        logger.error(
            "dropped an unreadable relaunch message", extra={"error": str(e), "body": record.body[:500]}
        )
        metrics.add_metric(name="RelaunchMessagesUnusable", unit=MetricUnit.Count, value=1)
        return
    outcome = relauncher().relaunch(request)
    metrics.add_metric(name=f"Relaunch{outcome.action.capitalize()}", unit=MetricUnit.Count, value=1)
    logger.info("relaunch %s", outcome.action, extra={"run_id": outcome.run_id, "attempt": outcome.attempt})


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=relaunch_record, processor=processor, context=context
    )
