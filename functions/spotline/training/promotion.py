"""The promotion gate: a succeeded run whose metric passes its config's ``promote`` section becomes
the model inference uses by default (see :mod:`spotline.ledger.models`); for a tuning run, the
model of its best trial, with the trial and its hyperparameters in the lineage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spotline.domain.naming import name_from_arn
from spotline.domain.settings import Settings
from spotline.domain.timefmt import iso_utc
from spotline.ledger.models import Models, promotion_order
from spotline.ledger.records import Promotion, Run
from spotline.ledger.runs import RunLedger
from spotline.runs.publish import final_metrics
from spotline.tuning.trials import tuned_hyperparameters


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
            "summary": self.summary(),
        }

    def summary(self) -> str:
        """In words, for alerts and ``spotline status``: ``not promoted: val/mAP50 0.12 < 0.25``."""
        if self.gate == "none":
            return "no promotion gate"
        if self.gate == "passed":
            passed = f"{self.metric} {self.value:.3g} >= {self.minimum:g}"
            return f"promoted: {passed}" if self.promoted else f"passed ({passed}); a newer run's model stays"
        if self.gate == "failed":
            return f"not promoted: {self.metric} {self.value:.3g} < {self.minimum:g}"
        if self.gate == "missing-metric":
            return f"not promoted: the run reported no {self.metric}"
        return f"not promoted: {self.gate}"


@dataclass
class TrainingCompleted:
    """What a completed training job publishes: the outcome of its run's promotion gate."""

    settings: Settings
    models: Models
    ledger: RunLedger

    def read(self, run: Run, describe: Mapping[str, Any]) -> None:
        """Nothing to read: the gate decides from DescribeTrainingJob's metrics."""

    def __call__(self, run: Run, describe: Mapping[str, Any], output: None, *, now: float) -> dict[str, Any]:
        result = self.promote_if_passing(run, describe, now=now)
        if result.gate != "none":  # `spotline status` shows it without reading the report
            self.ledger.note_promotion(run.run_id, result.summary(), now=now)
        return {"promotion": result.to_dict()}

    def promote_if_passing(self, run: Run, describe: Mapping[str, Any], *, now: float) -> PromotionResult:
        """Apply the run's gate; on a pass, record the promotion with its lineage."""
        policy = run.policy
        if policy is None or policy.promote_metric is None or policy.promote_min is None:
            return PromotionResult("none", False)
        metrics = final_metrics(describe)
        metric, minimum = policy.promote_metric, policy.promote_min
        value = metrics.get(metric)
        if value is None:
            return PromotionResult("missing-metric", False, metric, None, minimum)
        if value < minimum:
            return PromotionResult("failed", False, metric, value, minimum)
        artifact = (describe.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
        if not artifact:
            return PromotionResult("missing-artifact", False, metric, value, minimum)
        promotion = Promotion(
            run_id=run.run_id,
            model_artifact=str(artifact),
            config_key=run.source.key,
            config_version=run.source.version,
            config_snapshot=run.config_key,
            job_name=describe.get("TrainingJobName"),
            metrics=metrics,
            gate={"metric": metric, "min": minimum, "value": value},
            run_created_at=run.created_at,
            promoted_at=iso_utc(now),
            image=self._own_image(run),
            # A tuning run's best trial: which tuning job ran it, with what the tuner chose.
            tuning_job=name_from_arn(str(tuning_arn))
            if (tuning_arn := describe.get("TuningJobArn"))
            else None,
            hyperparameters=tuned_hyperparameters(describe) if describe.get("TuningJobArn") else {},
        )
        promoted = self.models.promote(promotion, order=promotion_order(run.created_at, run.run_id))
        return PromotionResult("passed", promoted, metric, value, minimum)

    def _own_image(self, run: Run) -> str | None:
        """The run's image if it is one of your own (its model goes to its own line), else None."""
        spec = (run.first_request or {}).get("AlgorithmSpecification") or {}
        image = spec.get("TrainingImage")
        return str(image) if image and image != self.settings.image_uri else None
