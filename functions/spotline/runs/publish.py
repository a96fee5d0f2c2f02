"""Settling a run and telling the world, once: report, SNS message, EventBridge event, EMF metrics.

:meth:`RunPublisher.finish` moves a run to a terminal state (a conditional write guarded by the
attempt number), writes ``runs/<run-id>/report.json`` (attempts, final metrics, model artifact,
Spot savings) and its page ``report.html`` (:mod:`spotline.runs.report_page`), and then sends
one SNS message, one ``spotline`` event and the run's metrics, all inside one send-once notice
(:mod:`spotline.ledger.notices`). Redelivered or concurrent events find the transition done and
the notice claimed, and send nothing — no second message, no second metric.
:meth:`RunPublisher.announce_retry` does the same for a relaunch (the page then shows the run as
it stands, interrupted attempt included). Every message carries the page's S3 URI and S3 console
URL (``report_page``, ``report_console``).

What a *completed* job publishes depends on the run's kind: the wiring plugs a
:class:`CompletedPublisher` per kind in (a training run applies its promotion gate; an inference
run writes ``results/<batch>/`` and sends the batch's own message, so its run-level success goes
out as an EventBridge event only — one SNS message per batch, not one per job). Its output is
read *before* the run settles: output that cannot be used (:class:`OutputUnusable`) settles the
run FAILED with one alert, never SUCCEEDED without results. A run that settles FAILED or
CANCELLED calls its kind's :class:`FailedPublisher` (an inference part: its batch settles with
the other parts' results once every part has ended).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Protocol

from spotline.adapters.drop_bucket import DropBucket
from spotline.adapters.notifier import Notifier
from spotline.domain import layout
from spotline.domain.plain import plain_fields
from spotline.domain.savings import LostWork, RunSavings, lost_work, run_savings
from spotline.domain.settings import Settings
from spotline.domain.states import RunKind, RunStatus
from spotline.domain.timefmt import iso_utc
from spotline.ledger.notices import Notices
from spotline.ledger.records import Attempt, Run
from spotline.ledger.runs import RunLedger, TransitionRefused
from spotline.ledger.trials import TrialLedger
from spotline.runs.report_page import RunPages, run_report_document

logger = logging.getLogger(__name__)

METRICS_NAMESPACE = "Spotline"
DETAIL_TYPES = {
    RunStatus.SUCCEEDED: "Run Succeeded",
    RunStatus.FAILED: "Run Failed",
    RunStatus.CANCELLED: "Run Cancelled",
    RunStatus.RETRYING: "Run Retrying",
}
WARNING_DETAIL_TYPE = "Run Warning"  # a run that goes on, with something a person should look at
WARNING_STATUS = "WARNING"
NOTICE_KIND = "run"  # the SNS ``kind`` attribute of every run message (launch uses it too)
UNUSABLE_OUTPUT = "unusable output"  # how a run failed by its own output's reason starts


class MetricsSink(Protocol):
    """What spotline needs of Powertools ``Metrics`` (EMF): add one data point."""

    def add_metric(self, name: str, unit: Any, value: float) -> None: ...


class OutputUnusable(Exception):
    """A completed job's output cannot be published (missing, corrupt, oversized): its run fails."""


class CompletedPublisher(Protocol):
    """What a completed job of one kind publishes; returns what goes into the report's ``results``."""

    def read(self, run: Run, describe: Mapping[str, Any]) -> Any:
        """The job's output, read before the run settles, without side effects; :class:`OutputUnusable`
        if it cannot be published."""

    def __call__(self, run: Run, describe: Mapping[str, Any], output: Any, *, now: float) -> dict[str, Any]:
        """Publish ``output`` (what :meth:`read` returned) once the run has settled SUCCEEDED."""


class FailedPublisher(Protocol):
    """What a run of one kind does when it settles FAILED or CANCELLED; returns the report's ``results``."""

    def __call__(self, run: Run, status: RunStatus, reason: str, *, now: float) -> dict[str, Any]: ...


def notice_for(status: RunStatus, attempt: int | None = None) -> str:
    """The ledger notice that guards the message for ``status`` (per next attempt for RETRYING)."""
    if status == RunStatus.RETRYING:
        return f"retrying-a{attempt or 0:02d}"
    return status.value.lower()


def final_metrics(describe: Mapping[str, Any]) -> dict[str, float]:
    """``FinalMetricDataList`` of DescribeTrainingJob as ``{name: value}``."""
    return {
        str(m["MetricName"]): float(m["Value"])
        for m in describe.get("FinalMetricDataList") or []
        if "MetricName" in m and "Value" in m
    }


@dataclass
class Settlement:
    """What :meth:`RunPublisher.finish` did: ``settled``, ``duplicate`` or ``stale``."""

    action: str
    status: RunStatus
    report_key: str | None = None
    savings: RunSavings | None = None
    results: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


@dataclass
class RunPublisher:
    """Terminal transitions and the messages that go with them."""

    settings: Settings
    _: KW_ONLY
    ledger: RunLedger
    trials: TrialLedger
    notices: Notices
    notifier: Notifier
    bucket: DropBucket
    prices: Mapping[str, float]
    completed: Mapping[RunKind, CompletedPublisher]
    run_pages: RunPages
    failed: Mapping[RunKind, FailedPublisher] = field(default_factory=dict)
    metrics: MetricsSink | None = None
    clock: Callable[[], float] = time.time

    def fail_waiting_run(self, run: Run, reason: str, cap: str | None) -> Settlement:
        """Settle a RETRYING run (its relaunch was refused) as FAILED, with an alert."""
        return self._settle_waiting(run, RunStatus.FAILED, "RELAUNCH_REFUSED", reason, cap=cap or None)

    def cancel_waiting_run(self, run: Run, reason: str, *, unless_relaunching: bool) -> Settlement:
        """Settle a RETRYING run a person cancelled as CANCELLED, with an alert.

        ``unless_relaunching``: not while a relaunch has claimed the next attempt (that relaunch
        finishes, and the run is settled when the job it started ends).
        """
        return self._settle_waiting(
            run, RunStatus.CANCELLED, "CANCELLED_WHILE_WAITING", reason, unless_relaunching=unless_relaunching
        )

    def _settle_waiting(self, run: Run, to: RunStatus, outcome: str, reason: str, **how: Any) -> Settlement:
        return self.finish(
            run, to, attempt=run.attempt, outcome=outcome, reason=reason, expected=RunStatus.RETRYING, **how
        )

    def finish(
        self,
        run: Run,
        to: RunStatus,
        *,
        attempt: int,
        outcome: str,
        reason: str = "",
        cap: str | None = None,
        describe: Mapping[str, Any] | None = None,
        expected: RunStatus = RunStatus.RUNNING,
        unless_relaunching: bool = False,
        extra_results: Mapping[str, Any] | None = None,
    ) -> Settlement:
        """Settle the run in ``to`` after ``attempt`` and publish it once.

        ``describe`` is the DescribeTrainingJob of the job whose model the run keeps (a tuning
        run's best trial); ``extra_results`` what the run's own flow adds to the report's results.

        A completed job whose output cannot be published settles FAILED instead (``Settlement.status``).
        """
        run_id = run.run_id
        now = self.clock()
        publish_completed = self.completed.get(run.kind) if to == RunStatus.SUCCEEDED else None
        output: Any = None
        if publish_completed is not None and describe is not None:
            try:
                output = publish_completed.read(run, describe)
            except OutputUnusable as e:
                logger.warning("run %s: unusable output: %s", run_id, e, extra={"run_id": run_id})
                to, reason, publish_completed = RunStatus.FAILED, f"{UNUSABLE_OUTPUT}: {e}", None
        try:
            run = self.ledger.settle(
                run_id,
                to,
                now=now,
                expected=[expected],
                attempt=attempt,
                outcome=outcome,
                reason=reason,
                cap=cap,
                unless_relaunching=unless_relaunching,
            )
        except TransitionRefused:
            current = self.ledger.get_run(run_id)
            if current is None or current.status != to or current.attempt != attempt:
                logger.info(
                    "run %s is %s at attempt %s: nothing to settle",
                    run_id,
                    current.status if current else None,
                    current.attempt if current else None,
                )
                return Settlement("stale", to, reason=reason)
            run = current
        notice = notice_for(to)
        if self.notices.of_run(run_id).claimed(notice):
            return Settlement("duplicate", to, reason=reason)

        results: dict[str, Any] = dict(extra_results or {})
        if to == RunStatus.SUCCEEDED and describe is not None and publish_completed is not None:
            results.update(publish_completed(run, describe, output, now=now))
        elif to in (RunStatus.FAILED, RunStatus.CANCELLED):
            publish_failed = self.failed.get(run.kind)
            if publish_failed is not None:
                results.update(publish_failed(run, to, reason, now=now))
        attempts = self.ledger.attempts(run_id)
        trials = self.trials.trials(run_id) if run.kind == RunKind.TUNING else []
        savings = run_savings(
            [*attempts, *trials], self.prices, run.policy.instance_count if run.policy else 1
        )
        lost = self._lost_work(run, attempts)
        describe = describe or {}
        metrics = final_metrics(describe)
        model_artifact = (
            (describe.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
            if to == RunStatus.SUCCEEDED
            else None
        )
        report = run_report_document(
            run,
            to,
            attempts,
            savings,
            reason=reason,
            cap=cap,
            final_metrics=metrics,
            model_artifact=model_artifact,
            results=results,
            finished_at=iso_utc(now),
            work_lost=lost,
            trials=trials,
        )
        report_key = layout.run_report_key(run_id)
        self.bucket.put_json(report_key, report)
        self.run_pages.write(run, report, now=now)

        body = {
            "run_id": run_id,
            "kind": run.kind.value,
            "status": to.value,
            "config": run.source.key,
            "attempts": len(attempts),
            **({"trials": len(trials)} if run.kind == RunKind.TUNING else {}),
            "outcome": outcome,
            "reason": reason,
            "cap": cap,
            "model_artifact": model_artifact,
            "final_metrics": metrics,
            "savings": _savings_summary(savings),
            **({"work_lost": lost.to_dict()} if lost is not None else {}),
            "results": results,
            "report": self.bucket.uri(report_key),
            **self.run_pages.links(run_id),
        }
        sent = self._announce(
            run,
            to,
            notice,
            _subject(run, to, reason, cap, results),
            body,
            after_send=lambda: self._emit_metrics(to, savings, len(attempts)),
        )
        # A concurrent delivery that got this far too finds the notice claimed: it sent nothing.
        return Settlement("settled" if sent else "duplicate", to, report_key, savings, results, reason)

    def announce_retry(self, run: Run, *, next_attempt: int, body: Mapping[str, Any]) -> bool:
        """The one "retrying" message of a relaunch, with the run's page as it stands; False if sent.

        A run whose image does not resume says the relaunch starts over, and how much work is lost."""
        notice = notice_for(RunStatus.RETRYING, next_attempt)
        attempts = self.ledger.attempts(run.run_id)
        lost = self._lost_work(run, attempts)
        restarts = "" if lost is None else ", restarts from zero"
        subject = f"spotline: {run.label} retrying (attempt {next_attempt}{restarts})"
        resumption: dict[str, Any] = {"resumes": lost is None}
        if lost is not None:
            resumption["restart"] = (
                "the image does not resume from checkpoints (job.checkpoints is not true): attempt "
                f"{next_attempt} starts from zero; {lost.training_s} s of training lost so far"
            )
            resumption["work_lost"] = lost.to_dict()

        def write_page() -> None:
            trials = self.trials.trials(run.run_id) if run.kind == RunKind.TUNING else []
            savings = run_savings(
                [*attempts, *trials], self.prices, run.policy.instance_count if run.policy else 1
            )
            report = run_report_document(
                run,
                RunStatus.RETRYING,
                attempts,
                savings,
                reason=str(body.get("reason") or ""),
                work_lost=lost,
                trials=trials,
            )
            self.run_pages.write(run, report, now=self.clock())

        return self._announce(
            run,
            RunStatus.RETRYING,
            notice,
            subject,
            {"run_id": run.run_id, **body, **resumption, **self.run_pages.links(run.run_id)},
            after_send=self._count_relaunch,
            before_send=write_page,
        )

    def warn_once(self, run: Run, what: str, subject: str, body: Mapping[str, Any]) -> bool:
        """One warning about a run that goes on (notice ``what``); False if it was already sent."""

        def send() -> None:
            attributes = {
                "kind": NOTICE_KIND,
                "status": WARNING_STATUS,
                "run_id": run.run_id,
                "run_kind": run.kind.value,
            }
            document = {"run_id": run.run_id, **body, **self.run_pages.links(run.run_id)}
            self.notifier.publish(subject, document, attributes)
            self.notifier.emit(WARNING_DETAIL_TYPE, document)

        return self.notices.of_run(run.run_id).send_once(what, send, now=self.clock())

    def _announce(
        self,
        run: Run,
        status: RunStatus,
        notice: str,
        subject: str,
        body: Mapping[str, Any],
        *,
        after_send: Callable[[], None],
        before_send: Callable[[], None] | None = None,
    ) -> bool:
        def send() -> None:
            if before_send is not None:
                before_send()
            if not (run.kind == RunKind.INFERENCE and status == RunStatus.SUCCEEDED):  # the batch has its own
                self.notifier.publish(
                    subject,
                    body,
                    {
                        "kind": NOTICE_KIND,
                        "status": status.value,
                        "run_id": run.run_id,
                        "run_kind": run.kind.value,
                    },
                )
            self.notifier.emit(DETAIL_TYPES[status], body)
            after_send()

        return self.notices.of_run(run.run_id).send_once(notice, send, now=self.clock())

    def _lost_work(self, run: Run, attempts: Sequence[Attempt]) -> LostWork | None:
        policy = run.policy
        if policy is None:
            return None
        return lost_work(attempts, self.prices, policy.instance_count, resumes=policy.resumes)

    def _count_relaunch(self) -> None:
        if self.metrics is not None:
            self.metrics.add_metric(name="Relaunches", unit="Count", value=1)

    def _emit_metrics(self, to: RunStatus, savings: RunSavings, attempts: int) -> None:
        m = self.metrics
        if m is None:
            return
        m.add_metric(name=f"Runs{to.value.capitalize()}", unit="Count", value=1)
        m.add_metric(name="AttemptsPerRun", unit="Count", value=attempts)
        m.add_metric(name="TrainingSeconds", unit="Seconds", value=savings.training_s)
        m.add_metric(name="BillableSeconds", unit="Seconds", value=savings.billable_s)
        m.add_metric(name="EstimatedCostUSD", unit="None", value=savings.estimated_cost_usd)
        m.add_metric(name="OnDemandCostUSD", unit="None", value=savings.on_demand_usd)
        m.add_metric(name="SpotSavingsUSD", unit="None", value=savings.savings_usd)
        m.add_metric(name="SpotSavingsPercent", unit="Percent", value=savings.savings_pct)


def _savings_summary(s: RunSavings) -> dict[str, Any]:
    """The totals of the savings (the per-attempt detail is in the report)."""
    return plain_fields(s, without=("unpriced_types", "attempts", "price_source"))


def _subject(run: Run, to: RunStatus, reason: str, cap: str | None, results: Mapping[str, Any]) -> str:
    if to == RunStatus.SUCCEEDED:
        gate = results.get("promotion") or {}
        if gate.get("gate") not in (None, "none", "passed"):
            return f"spotline: {run.label} succeeded, NOT promoted ({gate.get('summary', gate.get('gate'))})"
        return f"spotline: {run.label} succeeded"
    if to == RunStatus.CANCELLED:
        return f"spotline: {run.label} cancelled"
    why = cap or reason.split(":", 1)[0] or "failed"
    return f"spotline: {run.label} failed ({why})"
