"""BatchCloserFunction (scheduled, every minute): close quiet or full batches, launch their jobs."""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from spotline.domain.settings import Settings
from spotline.inference.closer import BatchCloser
from spotline.runs.publish import METRICS_NAMESPACE
from spotline.wiring import Wiring

SETTINGS = Settings.from_env()
logger = Logger()
metrics = Metrics(namespace=METRICS_NAMESPACE)


@functools.cache
def closer() -> BatchCloser:
    return Wiring(SETTINGS, metrics=metrics).batch_closer


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcomes = closer().close_due_batches()
    counts = Counter(o.action for o in outcomes)
    jobs = sum(1 for o in outcomes for r in o.runs if r.action == "launched")
    metrics.add_metric(name="InferenceJobsLaunched", unit=MetricUnit.Count, value=jobs)
    for o in outcomes:
        logger.info(o.describe(), extra={"batch": o.batch, "generation": o.generation, "action": o.action})
    return {"closes": dict(counts), "jobs_launched": jobs}
