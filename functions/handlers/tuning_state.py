"""TuningStateFunction: a spotline tuning job ended (EventBridge) -> settle its run, or follow it up."""

from __future__ import annotations

import dataclasses
from typing import Any

from handlers.runtime import FunctionRuntime
from spotline.domain.events import TuningJobStateChange, parse_tuning_job_state_change

RUNTIME = FunctionRuntime.at_cold_start()


@RUNTIME.event_entry(parse_tuning_job_state_change, unusable_metric="TuningEventsUnusable")
def handler(change: TuningJobStateChange) -> dict[str, Any]:
    outcome = RUNTIME.wiring.tuning_state.on_tuning_job_ended(change)
    RUNTIME.count(f"TuningEvents{outcome.action.capitalize()}")
    return dataclasses.asdict(outcome)
