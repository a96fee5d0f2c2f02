"""LaunchFunction: S3 ``Object Created`` under ``configs/`` (via EventBridge) -> a training run."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from spotline.domain.events import EventShapeError, parse_object_created
from spotline.domain.settings import Settings
from spotline.runs.publish import METRICS_NAMESPACE
from spotline.training.launch import TrainingLauncher
from spotline.wiring import Wiring

SETTINGS = Settings.from_env()
logger = Logger()
metrics = Metrics(namespace=METRICS_NAMESPACE)


@functools.cache
def launcher() -> TrainingLauncher:
    return Wiring(SETTINGS, metrics=metrics).training_launcher


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        obj = parse_object_created(event)
    except EventShapeError as e:
        logger.error("unusable event, not retried", extra={"error": str(e)})
        return {"action": "ignored", "reason": str(e)}
    outcome = launcher().launch_from_object(obj)
    metrics.add_metric(name=f"Configs{outcome.action.capitalize()}", unit=MetricUnit.Count, value=1)
    return dataclasses.asdict(outcome)
