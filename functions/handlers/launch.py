"""LaunchFunction: S3 ``Object Created`` under ``configs/`` (via EventBridge) -> a training run."""

from __future__ import annotations

import dataclasses
from typing import Any

from handlers.runtime import FunctionRuntime
from spotline.domain.events import ObjectCreated, parse_object_created

RUNTIME = FunctionRuntime.at_cold_start()


@RUNTIME.event_entry(parse_object_created)
def handler(obj: ObjectCreated) -> dict[str, Any]:
    outcome = RUNTIME.wiring.training_launcher.launch_from_object(obj)
    RUNTIME.count(f"Configs{outcome.action.capitalize()}")
    return dataclasses.asdict(outcome)
