"""BatchCloserFunction (scheduled, every minute): close quiet or full batches, launch their jobs."""

from __future__ import annotations

from collections import Counter
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from handlers.runtime import FunctionRuntime

RUNTIME = FunctionRuntime.at_cold_start()


@RUNTIME.entry
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcomes = RUNTIME.wiring.batch_closer.close_due_batches()
    jobs = sum(1 for o in outcomes for r in o.runs if r.action == "launched")
    RUNTIME.count("InferenceJobsLaunched", jobs)
    for o in outcomes:
        RUNTIME.logger.info(o.describe(), extra={"batch": o.batch, "generation": o.generation})
    return {"closes": dict(Counter(o.action for o in outcomes)), "jobs_launched": jobs}
