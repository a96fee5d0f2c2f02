"""RunWatchFunction (scheduled): count runs left PENDING past their launch lease (an alarm watches it)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from handlers.runtime import FunctionRuntime

RUNTIME = FunctionRuntime.at_cold_start()


@RUNTIME.entry
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    stuck = RUNTIME.wiring.pending_watch.stuck_runs()
    RUNTIME.count("RunsStuckPending", len(stuck))
    if stuck:
        RUNTIME.logger.error("runs left PENDING past their launch lease", extra={"run_ids": stuck[:20]})
    return {"stuck_pending": len(stuck), "run_ids": stuck[:20]}
