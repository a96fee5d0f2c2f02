"""ImageIntakeFunction: SQS batches of S3 ``Object Created`` events under ``inference/`` -> batch ledger.

The batch is recorded in one pass (images grouped per batch folder); Powertools' BatchProcessor
then reports each message's outcome, so only the messages that failed are redelivered.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes import SQSEvent
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from handlers.runtime import FunctionRuntime
from spotline.inference.intake import IntakeOutcome, count_actions

RUNTIME = FunctionRuntime.at_cold_start()
processor = BatchProcessor(event_type=EventType.SQS)
# A writer's lease outlives the invocation by this much (clock skew, a request in flight at timeout).
WRITER_LEASE_MARGIN_S = 30


class IntakeFailed(Exception):
    """This message's object could not be recorded; SQS redelivers it (then its DLQ)."""


@RUNTIME.entry
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    messages = [(r.message_id, r.body) for r in SQSEvent(event).records]
    deadline = time.time() + context.get_remaining_time_in_millis() / 1000 + WRITER_LEASE_MARGIN_S
    outcomes = RUNTIME.wiring.image_intake.record_messages(
        messages, writer=context.aws_request_id, deadline=deadline
    )
    for action, count in count_actions(outcomes.values()).items():
        RUNTIME.count(f"Intake{action.capitalize()}", count)

    def report(record: SQSRecord) -> None:
        outcome: IntakeOutcome = outcomes[record.message_id]
        if outcome.action == "failed":
            raise IntakeFailed(f"{outcome.key}: {outcome.reason}")

    return process_partial_response(event=event, record_handler=report, processor=processor, context=context)
