"""A run's recovery policy, taken from its config at launch and kept in the ledger.

The job-state and relaunch functions decide from this record alone, so they never re-read
or re-validate the user's file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spotline.config import RunConfig
from spotline.domain.plain import plain_fields


@dataclass(frozen=True)
class RunPolicy:
    ladder: tuple[str, ...]
    spot: bool
    max_attempts: int
    on_demand_fallback: bool
    budget_usd: float | None
    continue_after_max_runtime: bool
    retry_backoff_s: int
    max_wait_s: int | None
    instance_count: int
    promote_metric: str | None = None
    promote_min: float | None = None
    # A relaunched attempt continues from the run's checkpoints; False: an image of your own that
    # does not resume, so every relaunch starts over (and the work of an interrupted attempt is lost).
    resumes: bool = True
    # A tuning run: how its trials are judged, and whether trials lost to Spot are run again.
    objective_metric: str | None = None
    objective_goal: str | None = None
    follow_up_lost_trials: bool = False
    # How often the container checkpoints (by time; it may also by steps): None when not known.
    checkpoint_period_s: int | None = None

    @classmethod
    def from_config(cls, config: RunConfig) -> RunPolicy:
        job = config.job
        return cls(
            ladder=job.instance_ladder,
            spot=job.spot,
            max_attempts=job.max_attempts,
            on_demand_fallback=job.on_demand_fallback,
            budget_usd=job.budget_usd,
            continue_after_max_runtime=job.continue_after_max_runtime,
            retry_backoff_s=int(job.retry_backoff),
            max_wait_s=job.effective_max_wait,
            instance_count=job.instance_count,
            promote_metric=config.promote.metric if config.promote else None,
            promote_min=config.promote.min if config.promote else None,
            resumes=job.resumes,
            objective_metric=config.tuning.objective.metric if config.tuning else None,
            objective_goal=config.tuning.objective.goal if config.tuning else None,
            follow_up_lost_trials=bool(config.tuning and config.tuning.follow_up_lost_trials),
            # spotline's image checkpoints by its checkpoint section; an image of your own, as it does
            checkpoint_period_s=(round(config.checkpoint.period_minutes * 60) if job.image is None else None),
        )

    def to_item(self) -> dict[str, Any]:
        return plain_fields(self)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> RunPolicy:
        data: dict[str, Any] = {}
        for name, f in cls.__dataclass_fields__.items():
            if item.get(name) is not None or f.default is dataclasses.MISSING:
                data[name] = item.get(name)
        data["ladder"] = tuple(data["ladder"])
        if "follow_up_lost_trials" in data:
            data["follow_up_lost_trials"] = bool(data["follow_up_lost_trials"])
        return cls(**data)  # a field an older record lacks takes its default
