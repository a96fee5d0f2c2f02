"""RelaunchFunction: the SQS relaunch delay queue -> the next attempt of a run, from its checkpoints."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from handlers.runtime import FunctionRuntime
from spotline.adapters.relaunch_queue import RelaunchMessageError, RelaunchRequest

RUNTIME = FunctionRuntime.at_cold_start()
processor = BatchProcessor(event_type=EventType.SQS)


def relaunch_record(record: SQSRecord) -> None:
    try:
        request = RelaunchRequest.from_body(record.body)
    except RelaunchMessageError as e:
        RUNTIME.logger.error(
            "dropped an unreadable relaunch message", extra={"error": str(e), "body": record.body[:500]}
        )
        RUNTIME.count("RelaunchMessagesUnusable")
        return
    outcome = RUNTIME.wiring.relauncher.relaunch(request)
    RUNTIME.count(f"Relaunch{outcome.action.capitalize()}")
    RUNTIME.logger.info(
        "relaunch %s", outcome.action, extra={"run_id": outcome.run_id, "attempt": outcome.attempt}
    )


@RUNTIME.entry
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=relaunch_record, processor=processor, context=context
    )
