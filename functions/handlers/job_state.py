"""JobStateFunction: a spotline training job ended (EventBridge) -> publish, relaunch, or alert."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from spotline.domain.events import EventShapeError, parse_training_job_state_change
from spotline.domain.settings import Settings
from spotline.runs.job_state import JobStateFlow
from spotline.runs.publish import METRICS_NAMESPACE
from spotline.wiring import Wiring

SETTINGS = Settings.from_env()
logger = Logger()
metrics = Metrics(namespace=METRICS_NAMESPACE)


@functools.cache
def flow() -> JobStateFlow:
    return Wiring(SETTINGS, metrics=metrics).job_state


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        change = parse_training_job_state_change(event)
    except EventShapeError as e:
        logger.error("unusable event, not retried", extra={"error": str(e)})
        metrics.add_metric(name="JobEventsUnusable", unit=MetricUnit.Count, value=1)
        return {"action": "ignored", "reason": str(e)}
    outcome = flow().on_job_ended(change)
    metrics.add_metric(name=f"JobEvents{outcome.action.capitalize()}", unit=MetricUnit.Count, value=1)
    return dataclasses.asdict(outcome)
