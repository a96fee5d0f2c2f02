"""The promotion gate: a succeeded run whose metric passes its config's ``promote`` section becomes
the model inference uses by default (see :mod:`spotline.ledger.models`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spotline.ledger.models import promoted_model, promotion_order, record_promotion
from spotline.ledger.table import LedgerTable
from spotline.policy import RunPolicy
from spotline.timefmt import iso_utc

__all__ = ["PromotionResult", "final_metrics", "promote_if_passing", "promoted_model"]


@dataclass(frozen=True)
class PromotionResult:
    """``gate``: none | failed | missing-metric | passed; ``promoted``: the record was written."""

    gate: str
    promoted: bool
    metric: str | None = None
    value: float | None = None
    minimum: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "promoted": self.promoted,
            "metric": self.metric,
            "value": self.value,
            "min": self.minimum,
        }


def final_metrics(describe: Mapping[str, Any]) -> dict[str, float]:
    """``FinalMetricDataList`` of DescribeTrainingJob as ``{name: value}``."""
    return {
        str(m["MetricName"]): float(m["Value"])
        for m in describe.get("FinalMetricDataList") or []
        if "MetricName" in m and "Value" in m
    }


def promote_if_passing(
    table: LedgerTable, run: Mapping[str, Any], describe: Mapping[str, Any], *, now: float
) -> PromotionResult:
    """Apply the run's gate; on a pass, record the promotion with its lineage."""
    policy = RunPolicy.from_item(run["policy"])
    if policy.promote_metric is None or policy.promote_min is None:
        return PromotionResult("none", False)
    metrics = final_metrics(describe)
    value = metrics.get(policy.promote_metric)
    metric, minimum = policy.promote_metric, policy.promote_min
    if value is None:
        return PromotionResult("missing-metric", False, metric, None, minimum)
    if value < minimum:
        return PromotionResult("failed", False, metric, value, minimum)
    record = {
        "run_id": run["run_id"],
        "config_key": run.get("source_key"),
        "config_version": run.get("source_version"),
        "config_snapshot": run.get("config_key"),
        "job_name": describe.get("TrainingJobName"),
        "model_artifact": (describe.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
        "metrics": metrics,
        "gate": {"metric": policy.promote_metric, "min": policy.promote_min, "value": value},
        "run_created_at": run.get("created_at"),
        "promoted_at": iso_utc(now),
    }
    order = promotion_order(str(run.get("created_at", "")), str(run["run_id"]))
    return PromotionResult("passed", record_promotion(table, record, order=order), metric, value, minimum)
