"""ConfigDeletedFunction: S3 ``Object Deleted`` under ``configs/`` (via EventBridge) -> its runs cancelled."""

from __future__ import annotations

import dataclasses
from typing import Any

from handlers.runtime import FunctionRuntime
from spotline.domain.events import ObjectDeleted, parse_object_deleted

RUNTIME = FunctionRuntime.at_cold_start()


@RUNTIME.event_entry(parse_object_deleted)
def handler(obj: ObjectDeleted) -> dict[str, Any]:
    outcome = RUNTIME.wiring.config_deletion.cancel_runs_of(obj)
    RUNTIME.count("RunsCancelledByDeletion", len(outcome.cancelled))
    return dataclasses.asdict(outcome)
