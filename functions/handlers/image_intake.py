"""ImageIntakeFunction: SQS batches of S3 ``Object Created`` events under ``inference/`` -> batch ledger.

The batch is recorded in one pass (images grouped per batch folder); Powertools' BatchProcessor
then reports each message's outcome, so only the messages that failed are redelivered.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes import SQSEvent
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from spotline.domain.settings import Settings
from spotline.inference.intake import ImageIntake, IntakeOutcome, count_actions
from spotline.runs.publish import METRICS_NAMESPACE
from spotline.wiring import Wiring

SETTINGS = Settings.from_env()
logger = Logger()
metrics = Metrics(namespace=METRICS_NAMESPACE)
processor = BatchProcessor(event_type=EventType.SQS)
# A writer's lease outlives the invocation by this much (clock skew, a request in flight at timeout).
WRITER_LEASE_MARGIN_S = 30


class IntakeFailed(Exception):
    """This message's object could not be recorded; SQS redelivers it (then its DLQ)."""


@functools.cache
def intake() -> ImageIntake:
    return Wiring(SETTINGS, metrics=metrics).image_intake


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    messages = [(r.message_id, r.body) for r in SQSEvent(event).records]
    deadline = time.time() + context.get_remaining_time_in_millis() / 1000 + WRITER_LEASE_MARGIN_S
    outcomes = intake().record_messages(messages, writer=context.aws_request_id, deadline=deadline)
    for action, count in count_actions(outcomes.values()).items():
        metrics.add_metric(name=f"Intake{action.capitalize()}", unit=MetricUnit.Count, value=count)

    def report(record: SQSRecord) -> None:
        outcome: IntakeOutcome = outcomes[record.message_id]
        if outcome.action == "failed":
            raise IntakeFailed(f"{outcome.key}: {outcome.reason}")

    return process_partial_response(event=event, record_handler=report, processor=processor, context=context)
