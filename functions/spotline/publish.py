"""Settling a run and telling the world, once: report, SNS message, EventBridge event, EMF metrics.

:meth:`Publisher.finish` moves a run to a terminal state (a conditional write guarded by the
attempt number), writes ``runs/<run-id>/report.json`` (attempts, final metrics, model
artifact, Spot savings) and then sends one SNS message and one ``spotline`` event, guarded by a
notice claimed in the ledger. Redelivered events find the transition done and the notice
claimed, and send nothing. :meth:`Publisher.announce_retry` does the same for a relaunch.

What a *completed* job publishes depends on the run's kind (:func:`publish_completed`): a
training run applies its promotion gate; an inference run writes ``results/<batch>/`` and sends
the batch's own message (``spotline.inference_results``), so its run-level success goes out as an
EventBridge event only — one SNS message per batch, not one per job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from spotline import layout
from spotline.drop_bucket import DropBucket
from spotline.ledger import LedgerTable, RunLedger, TransitionRefused
from spotline.notify import Notifier
from spotline.policy import RunPolicy
from spotline.promotion import final_metrics, promote_if_passing
from spotline.savings import RunSavings, run_savings
from spotline.settings import Settings
from spotline.states import RunStatus
from spotline.timefmt import iso_utc

logger = logging.getLogger(__name__)

METRICS_NAMESPACE = "Spotline"
DETAIL_TYPES = {
    RunStatus.SUCCEEDED: "Run Succeeded",
    RunStatus.FAILED: "Run Failed",
    RunStatus.CANCELLED: "Run Cancelled",
    RunStatus.RETRYING: "Run Retrying",
}
NOTICE_KIND = "run"  # the SNS ``kind`` attribute of every run message (launch uses it too)


class MetricsSink(Protocol):
    """What spotline needs of Powertools ``Metrics`` (EMF): add one data point."""

    def add_metric(self, name: str, unit: Any, value: float) -> None: ...


def notice_for(status: RunStatus, attempt: int | None = None) -> str:
    """The ledger notice that guards the message for ``status`` (per next attempt for RETRYING)."""
    if status == RunStatus.RETRYING:
        return f"retrying-a{attempt or 0:02d}"
    return status.value.lower()


@dataclass(frozen=True)
class PublishContext:
    """What a completed-run publisher may use."""

    settings: Settings
    table: LedgerTable
    s3: Any
    now: float


def publish_training_completed(
    context: PublishContext, run: Mapping[str, Any], describe: Mapping[str, Any]
) -> dict[str, Any]:
    """A trained model: apply the promotion gate of the run's config."""
    promotion = promote_if_passing(context.table, run, describe, now=context.now)
    return {"promotion": promotion.to_dict()}


def publish_completed(
    context: PublishContext, run: Mapping[str, Any], describe: Mapping[str, Any]
) -> dict[str, Any]:
    """The results of a completed job, by run kind; they go into the report under ``results``."""
    if run.get("kind") == "inference":
        from spotline.inference_results import publish_inference_completed  # imports this module

        return publish_inference_completed(context, run, describe)
    return publish_training_completed(context, run, describe)


@dataclass
class Settlement:
    """What :meth:`Publisher.finish` did: ``settled``, ``duplicate`` or ``stale``."""

    action: str
    status: RunStatus
    report_key: str | None = None
    savings: RunSavings | None = None
    results: dict[str, Any] = field(default_factory=dict)


class Publisher:
    """Terminal transitions and the messages that go with them."""

    def __init__(
        self,
        settings: Settings,
        *,
        ledger: RunLedger,
        notifier: Notifier,
        prices: Mapping[str, float],
        s3: Any | None = None,
        metrics: MetricsSink | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.notifier = notifier
        self.prices = prices
        self.bucket = DropBucket(settings, s3)
        self.metrics = metrics
        self.clock = clock

    @property
    def s3(self) -> Any:
        return self.bucket.s3

    @classmethod
    def from_settings(cls, settings: Settings, *, metrics: MetricsSink | None = None) -> Publisher:
        """The deployed wiring: clients built on first use."""
        from spotline.prices import price_table

        return cls(
            settings,
            ledger=RunLedger(LedgerTable(settings.table)),
            notifier=Notifier(settings.topic_arn, settings.event_bus),
            prices=price_table(settings.prices_json),
            metrics=metrics,
        )

    def fail_waiting_run(self, run: Mapping[str, Any], reason: str, cap: str) -> Settlement:
        """Settle a RETRYING run (its relaunch was refused) as FAILED, with an alert."""
        return self.finish(
            run,
            RunStatus.FAILED,
            attempt=int(run.get("attempt", 0)),
            outcome="RELAUNCH_REFUSED",
            reason=reason,
            cap=cap or None,
            expected=RunStatus.RETRYING,
        )

    def finish(
        self,
        run: Mapping[str, Any],
        to: RunStatus,
        *,
        attempt: int,
        outcome: str,
        reason: str = "",
        cap: str | None = None,
        describe: Mapping[str, Any] | None = None,
        expected: RunStatus = RunStatus.RUNNING,
    ) -> Settlement:
        """Settle the run in ``to`` after ``attempt`` and publish it once."""
        run_id = str(run["run_id"])
        now = self.clock()
        attrs = {
            "outcome": outcome,
            "reason": reason,
            "finished_at": iso_utc(now),
            **({"cap": cap} if cap else {}),
        }
        try:
            run = self.ledger.transition(
                run_id, to, now=now, expected=[expected], expected_attempt=attempt, attrs=attrs
            )
        except TransitionRefused:
            current = self.ledger.get_run(run_id) or {}
            if current.get("status") != to.value or int(current.get("attempt", 0)) != attempt:
                logger.info(
                    "run %s is %s at attempt %s: nothing to settle",
                    run_id,
                    current.get("status"),
                    current.get("attempt"),
                )
                return Settlement("stale", to)
            run = current
        notice = notice_for(to)
        if self.ledger.notice_claimed(run_id, notice):
            return Settlement("duplicate", to)

        results: dict[str, Any] = {}
        if to == RunStatus.SUCCEEDED and describe is not None:
            context = PublishContext(self.settings, self.ledger.table, self.s3, now)
            results = publish_completed(context, run, describe)
        attempts = self.ledger.attempts(run_id)
        policy = RunPolicy.from_item(run["policy"]) if run.get("policy") else None
        savings = run_savings(attempts, self.prices, policy.instance_count if policy else 1)
        report = self._report(
            run,
            to,
            attempts=attempts,
            savings=savings,
            describe=describe,
            results=results,
            reason=reason,
            cap=cap,
            now=now,
        )
        report_key = layout.run_report_key(run_id)
        self.bucket.put_json(report_key, report)

        body = {
            "run_id": run_id,
            "kind": run.get("kind", "training"),
            "status": to.value,
            "config": run.get("source_key"),
            "attempts": len(attempts),
            "outcome": outcome,
            "reason": reason,
            "cap": cap,
            "model_artifact": report["model_artifact"],
            "final_metrics": report["final_metrics"],
            "savings": _savings_summary(savings),
            "results": results,
            "report": f"s3://{self.settings.bucket}/{report_key}",
        }
        self._announce(run, to, notice, _subject(run, to, reason, cap), body)
        self._emit_metrics(to, savings, len(attempts))
        return Settlement("settled", to, report_key, savings, results)

    def announce_retry(self, run: Mapping[str, Any], *, next_attempt: int, body: Mapping[str, Any]) -> bool:
        """The one "retrying" message of a relaunch; False if it was already sent."""
        notice = notice_for(RunStatus.RETRYING, next_attempt)
        if self.ledger.notice_claimed(str(run["run_id"]), notice):
            return False
        subject = f"spotline: {_label(run)} retrying (attempt {next_attempt})"
        sent = self._announce(run, RunStatus.RETRYING, notice, subject, {"run_id": run["run_id"], **body})
        if sent and self.metrics is not None:
            self.metrics.add_metric(name="Relaunches", unit="Count", value=1)
        return sent

    def _announce(
        self, run: Mapping[str, Any], status: RunStatus, notice: str, subject: str, body: Mapping[str, Any]
    ) -> bool:
        run_id = str(run["run_id"])
        run_kind = str(run.get("kind", "training"))

        def send() -> None:
            if not (run_kind == "inference" and status == RunStatus.SUCCEEDED):  # the batch has its own
                self.notifier.publish(
                    subject,
                    body,
                    {"kind": NOTICE_KIND, "status": status.value, "run_id": run_id, "run_kind": run_kind},
                )
            self.notifier.emit(DETAIL_TYPES[status], body)

        return self.ledger.send_notice_once(run_id, notice, self.clock(), send)

    def _report(
        self,
        run: Mapping[str, Any],
        to: RunStatus,
        *,
        attempts: list[dict[str, Any]],
        savings: RunSavings,
        describe: Mapping[str, Any] | None,
        results: Mapping[str, Any],
        reason: str,
        cap: str | None,
        now: float,
    ) -> dict[str, Any]:
        describe = describe or {}
        return {
            "run_id": run["run_id"],
            "kind": run.get("kind", "training"),
            "status": to.value,
            "reason": reason,
            "cap": cap,
            "source": {
                "bucket": run.get("source_bucket"),
                "key": run.get("source_key"),
                "version": run.get("source_version"),
            },
            "config_snapshot": run.get("config_key"),
            "created_at": run.get("created_at"),
            "finished_at": iso_utc(now),
            "final_metrics": final_metrics(describe),
            "model_artifact": (describe.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
            if to == RunStatus.SUCCEEDED
            else None,
            "attempts": [_attempt_view(a) for a in attempts],
            "savings": savings.to_dict(),
            "results": dict(results),
        }

    def _emit_metrics(self, to: RunStatus, savings: RunSavings, attempts: int) -> None:
        if self.metrics is None:
            return
        m = self.metrics
        m.add_metric(name=f"Runs{to.value.capitalize()}", unit="Count", value=1)
        m.add_metric(name="AttemptsPerRun", unit="Count", value=attempts)
        m.add_metric(name="TrainingSeconds", unit="Seconds", value=savings.training_s)
        m.add_metric(name="BillableSeconds", unit="Seconds", value=savings.billable_s)
        m.add_metric(name="EstimatedCostUSD", unit="None", value=savings.estimated_cost_usd)
        m.add_metric(name="OnDemandCostUSD", unit="None", value=savings.on_demand_usd)
        m.add_metric(name="SpotSavingsUSD", unit="None", value=savings.savings_usd)
        m.add_metric(name="SpotSavingsPercent", unit="Percent", value=savings.savings_pct)


_ATTEMPT_FIELDS = (
    "attempt",
    "job_name",
    "instance_type",
    "spot",
    "status",
    "outcome",
    "secondary_status",
    "failure_reason",
    "training_s",
    "billable_s",
    "launched_at",
    "ended_at",
)


def _attempt_view(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: item.get(k) for k in _ATTEMPT_FIELDS}


def _savings_summary(s: RunSavings) -> dict[str, Any]:
    return {
        "training_s": s.training_s,
        "billable_s": s.billable_s,
        "estimated_cost_usd": s.estimated_cost_usd,
        "on_demand_usd": s.on_demand_usd,
        "savings_usd": s.savings_usd,
        "savings_pct": s.savings_pct,
        "estimate": True,
    }


def _label(run: Mapping[str, Any]) -> str:
    key = str(run.get("source_key") or run.get("run_id"))
    return key.rsplit("/", 1)[-1]


def _subject(run: Mapping[str, Any], to: RunStatus, reason: str, cap: str | None) -> str:
    label = _label(run)
    if to == RunStatus.SUCCEEDED:
        return f"spotline: {label} succeeded"
    if to == RunStatus.CANCELLED:
        return f"spotline: {label} cancelled"
    why = cap or reason.split(":", 1)[0] or "failed"
    return f"spotline: {label} failed ({why})"
