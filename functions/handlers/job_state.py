"""JobStateFunction: a spotline training job ended (EventBridge) -> publish, relaunch, or alert."""

from __future__ import annotations

import dataclasses
from typing import Any

from handlers.runtime import FunctionRuntime
from spotline.domain.events import TrainingJobStateChange, parse_training_job_state_change

RUNTIME = FunctionRuntime.at_cold_start()


@RUNTIME.event_entry(parse_training_job_state_change, unusable_metric="JobEventsUnusable")
def handler(change: TrainingJobStateChange) -> dict[str, Any]:
    outcome = RUNTIME.wiring.job_state.on_job_ended(change)
    RUNTIME.count(f"JobEvents{outcome.action.capitalize()}")
    return dataclasses.asdict(outcome)
