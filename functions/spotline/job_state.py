"""A training job ended: classify why, then publish, relaunch from the checkpoints, or stop and alert.

The flow, for one ``SageMaker Training Job State Change`` event:

1. keep only spotline's jobs (``<prefix>-<run id>-aNN``) in a terminal status;
2. find the run; an event of an older attempt than the run's is stale and ignored, one of a
   newer attempt than the ledger knows (its relaunch has not recorded it yet) is retried later;
   a run already settled for this attempt, with its notice sent, is a duplicate;
3. DescribeTrainingJob (events lack failure reasons and billable seconds) and record the
   attempt's outcome and seconds;
4. classify (:mod:`spotline.classify`) and act: publish, or plan a relaunch on the ladder
   (:mod:`spotline.retry`) — the run goes RETRYING and a message waits on the relaunch delay
   queue — or, when a cap stops the ladder, fail with an alert naming the cap.

Every step is a conditional write or guarded by a notice, so redelivered events (SageMaker's
and EventBridge's) create no second job and send no second message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from spotline.classify import TERMINAL_JOB_STATUSES, Action, Outcome, Rule, classify
from spotline.events import TrainingJobStateChange
from spotline.ledger import RunLedger, TransitionRefused
from spotline.naming import parse_job_name
from spotline.policy import RunPolicy
from spotline.publish import Publisher, notice_for
from spotline.relaunch import RelaunchQueue
from spotline.retry import CapReached, plan_relaunch
from spotline.savings import spent_usd
from spotline.settings import Settings
from spotline.states import AttemptStatus, RunStatus
from spotline.timefmt import iso_utc
from spotline.training_jobs import TrainingJobs

logger = logging.getLogger(__name__)

_ATTEMPT_STATUS = {
    Outcome.COMPLETED: AttemptStatus.COMPLETED,
    Outcome.SPOT_UNAVAILABLE: AttemptStatus.INTERRUPTED,
    Outcome.STOPPED_BY_USER: AttemptStatus.STOPPED,
    Outcome.MAX_RUNTIME: AttemptStatus.STOPPED,
}


@dataclass(frozen=True)
class EndedAttempt:
    """An attempt that ended, with its run, its classification and DescribeTrainingJob's answer."""

    run: Mapping[str, Any]
    attempt: int
    rule: Rule
    describe: Mapping[str, Any]


class RunNotCaughtUp(Exception):
    """The event is ahead of the ledger (a job that ended before its launch was recorded): retry later."""


@dataclass(frozen=True)
class StateOutcome:
    """What one event did: ignored, stale, duplicate, succeeded, failed, cancelled or retrying."""

    action: str
    run_id: str | None = None
    attempt: int | None = None
    outcome: str | None = None
    reason: str = ""
    next_attempt: int | None = None
    delay_s: int | None = None


class JobStateFlow:
    def __init__(
        self,
        settings: Settings,
        *,
        ledger: RunLedger,
        jobs: TrainingJobs,
        publisher: Publisher,
        queue: RelaunchQueue,
        prices: Mapping[str, float],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.jobs = jobs
        self.publisher = publisher
        self.queue = queue
        self.prices = prices
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, publisher: Publisher) -> JobStateFlow:
        """The deployed wiring: clients built on first use."""
        return cls(
            settings,
            ledger=publisher.ledger,
            jobs=TrainingJobs(),
            publisher=publisher,
            queue=RelaunchQueue(settings.relaunch_queue_url),
            prices=publisher.prices,
        )

    def on_job_ended(self, change: TrainingJobStateChange) -> StateOutcome:
        parsed = parse_job_name(self.settings.job_prefix, change.job_name)
        if parsed is None:
            return StateOutcome("ignored", reason=f"{change.job_name} is not a spotline job")
        run_id, attempt = parsed
        if change.status not in TERMINAL_JOB_STATUSES:
            return StateOutcome("ignored", run_id, attempt, reason=f"status {change.status} is not terminal")
        run = self.ledger.get_run(run_id)
        if run is None:
            return StateOutcome("ignored", run_id, attempt, reason="no such run in the ledger")
        known = int(run.get("attempt", 0))
        status = RunStatus(run["status"])
        if attempt < known:
            return StateOutcome("stale", run_id, attempt, reason=f"the run is at attempt {known}")
        if attempt > known or status == RunStatus.PENDING:
            raise RunNotCaughtUp(f"run {run_id} is {status} at attempt {known}; event for attempt {attempt}")
        if status != RunStatus.RUNNING:
            settled_notice = notice_for(status, run.get("next_attempt"))
            if self.ledger.notice_claimed(run_id, settled_notice):
                return StateOutcome("duplicate", run_id, attempt, reason=f"run already {status}")

        describe = self.jobs.describe(change.job_name)
        job_status = str(describe.get("TrainingJobStatus", change.status))
        if job_status not in TERMINAL_JOB_STATUSES:
            return StateOutcome("ignored", run_id, attempt, reason=f"DescribeTrainingJob says {job_status}")
        reason = str(describe.get("FailureReason") or "")
        rule = classify(job_status, str(describe.get("SecondaryStatus") or ""), reason)
        self._record_attempt(run_id, attempt, describe, rule)
        logger.info(
            "job %s ended: %s -> %s",
            change.job_name,
            rule.outcome,
            rule.action,
            extra={"run_id": run_id, "attempt": attempt, "failure_reason": reason},
        )

        policy = RunPolicy.from_item(run["policy"])
        ended = EndedAttempt(run, attempt, rule, describe)
        action = rule.action
        if action == Action.RELAUNCH_IF_CONTINUING and not policy.continue_after_max_runtime:
            return self._settle(
                ended,
                RunStatus.FAILED,
                "MaxRuntimeExceeded: the attempt used all of max_runtime "
                "(set job.continue_after_max_runtime to resume from checkpoints)",
            )
        if action == Action.PUBLISH:
            return self._settle(ended, RunStatus.SUCCEEDED, "")
        if action == Action.CANCEL:
            return self._settle(ended, RunStatus.CANCELLED, "stopped by a person")
        if action == Action.ALERT:
            return self._settle(ended, RunStatus.FAILED, reason or rule.why)
        return self._relaunch(ended, policy)

    def _record_attempt(self, run_id: str, attempt: int, describe: Mapping[str, Any], rule: Rule) -> None:
        end: Any = describe.get("TrainingEndTime") or describe.get("LastModifiedTime")
        facts = {
            "status": _ATTEMPT_STATUS.get(rule.outcome, AttemptStatus.FAILED).value,
            "outcome": rule.outcome.value,
            "job_status": describe.get("TrainingJobStatus"),
            "secondary_status": describe.get("SecondaryStatus") or None,
            "failure_reason": describe.get("FailureReason") or None,
            "training_s": int(describe.get("TrainingTimeInSeconds") or 0),
            "billable_s": int(describe.get("BillableTimeInSeconds") or 0),
            "ended_at": end.isoformat() if hasattr(end, "isoformat") else (str(end) if end else None),
        }
        self.ledger.update_attempt(run_id, attempt, {k: v for k, v in facts.items() if v is not None})

    def _settle(
        self, ended: EndedAttempt, to: RunStatus, reason: str, cap: str | None = None
    ) -> StateOutcome:
        settled = self.publisher.finish(
            ended.run,
            to,
            attempt=ended.attempt,
            outcome=ended.rule.outcome.value,
            reason=reason,
            cap=cap,
            describe=ended.describe,
        )
        action = to.value.lower() if settled.action == "settled" else settled.action
        return StateOutcome(action, str(ended.run["run_id"]), ended.attempt, ended.rule.outcome.value, reason)

    def _relaunch(self, ended: EndedAttempt, policy: RunPolicy) -> StateOutcome:
        run, attempt, rule, describe = ended.run, ended.attempt, ended.rule, ended.describe
        run_id = str(run["run_id"])
        attempts = [a for a in self.ledger.attempts(run_id) if int(a["attempt"]) <= attempt]
        spent = spent_usd(attempts, self.prices, policy.instance_count)
        plan = plan_relaunch(policy, rule.action, run_id=run_id, attempts=attempts, spent_usd=spent)
        if isinstance(plan, CapReached):
            last = str(describe.get("FailureReason") or describe.get("SecondaryStatus") or rule.outcome)
            reason = f"{plan.cap} reached: {plan.detail} (last attempt: {last})"
            return self._settle(ended, RunStatus.FAILED, reason, cap=plan.cap.value)

        now = self.clock()
        not_before = now + plan.delay_s
        try:
            run = self.ledger.transition(
                run_id,
                RunStatus.RETRYING,
                now=now,
                expected=[RunStatus.RUNNING],
                expected_attempt=attempt,
                attrs={
                    "next_attempt": plan.attempt,
                    "next_instance_type": plan.rung.instance_type,
                    "next_spot": plan.rung.spot,
                    "not_before": int(not_before),
                    "retry_reason": rule.outcome.value,
                },
            )
        except TransitionRefused:
            current = self.ledger.get_run(run_id) or {}
            if current.get("status") != RunStatus.RETRYING or int(current.get("attempt", 0)) != attempt:
                return StateOutcome("stale", run_id, attempt, rule.outcome.value, "the run moved on")
            run = current
        next_attempt = int(run["next_attempt"])
        not_before = float(run["not_before"])
        relaunch_notice = f"relaunch-a{next_attempt:02d}"
        if self.ledger.claim_notice(run_id, relaunch_notice, now):
            try:
                self.queue.send(run_id, next_attempt, not_before=not_before, now=now)
            except Exception:
                self.ledger.release_notice(run_id, relaunch_notice)
                raise
        failure = str(describe.get("FailureReason") or describe.get("SecondaryStatus") or "")
        sent = self.publisher.announce_retry(
            run,
            next_attempt=next_attempt,
            body={
                "kind": run.get("kind", "training"),
                "status": RunStatus.RETRYING.value,
                "config": run.get("source_key"),
                "ended_attempt": attempt,
                "outcome": rule.outcome.value,
                "reason": failure,
                "next_attempt": next_attempt,
                "next_instance_type": run["next_instance_type"],
                "next_spot": run["next_spot"],
                "not_before": iso_utc(not_before),
                "checkpoints": (run.get("first_request") or {}).get("CheckpointConfig", {}).get("S3Uri"),
            },
        )
        return StateOutcome(
            "retrying" if sent else "duplicate",
            run_id,
            attempt,
            rule.outcome.value,
            failure,
            next_attempt,
            int(not_before - now),
        )
