"""A training job ended: classify why, then publish, relaunch from the checkpoints, or stop and alert.

The flow, for one ``SageMaker Training Job State Change`` event:

1. keep only spotline's jobs in a terminal status: the run and attempt its ``spotline:*`` tags name
   (:mod:`spotline.domain.job_identity`: spotline's own jobs, and jobs launched elsewhere that ask to
   be adopted), or its name ``<prefix>-<run id>-aNN``; a tuning job's trial is left to its tuning job;
2. find the run; a run the ledger does not know, still PENDING, or waiting for this very attempt
   is caught up from the job itself (:mod:`spotline.runs.catch_up`: a launch or relaunch that died
   after CreateTrainingJob never leaves a paid job unwatched, and an adopted job becomes a run the
   same way); an event of an older attempt than
   the run's is stale; a run already settled for this attempt, with its notice sent, is a duplicate;
3. DescribeTrainingJob (events lack failure reasons and billable seconds) and record the
   attempt's outcome and seconds, and how far it got: the checkpoint iteration it started from and
   left in S3, and the iteration it reached (:mod:`spotline.domain.progress`); an attempt to be
   relaunched that should have checkpointed and left nothing newer in S3 raises one alert per run;
4. classify (:mod:`spotline.domain.classify`) and act: publish, or plan a relaunch on the ladder
   (:mod:`spotline.domain.retry`) — the run goes RETRYING and a message waits on the relaunch delay
   queue — or, when a cap stops the ladder (its last two relaunches made no progress, too), fail
   with an alert naming the cap; a run a person cancelled (its config deleted) is settled
   CANCELLED instead of relaunched.

Every step is a conditional write or guarded by a notice, so redelivered events (SageMaker's
and EventBridge's) create no second job and send no second message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any, Protocol

from spotline.adapters.drop_bucket import DropBucket
from spotline.adapters.relaunch_queue import RelaunchQueue
from spotline.adapters.training_jobs import JobNotFound, TrainingJobs
from spotline.domain.classify import TERMINAL_JOB_STATUSES, Action, Outcome, Rule, classify
from spotline.domain.events import TrainingJobStateChange, parse_timestamp
from spotline.domain.job_identity import identify_job
from spotline.domain.policy import RunPolicy
from spotline.domain.progress import checkpoints_missing, no_progress, reached_iteration
from spotline.domain.requests import TAG_KIND, relaunch_refusal
from spotline.domain.retry import RELAUNCH_ACTIONS, Cap, CapReached, plan_relaunch
from spotline.domain.savings import spent_usd
from spotline.domain.settings import Settings
from spotline.domain.states import TERMINAL_RUN_STATES, AttemptStatus, RunKind, RunStatus
from spotline.domain.timefmt import iso_utc
from spotline.ledger.notices import Notices
from spotline.ledger.records import Attempt, AttemptEnd, NextAttempt, Run
from spotline.ledger.runs import RunLedger, TransitionRefused
from spotline.metric_names import TRAIN_ITERATION
from spotline.runs.catch_up import NotCatchable, RunCatchUp
from spotline.runs.progress import checkpoint_iteration, checkpoint_uri_of, writes_our_pointer
from spotline.runs.publish import RunPublisher, final_metrics, notice_for

logger = logging.getLogger(__name__)

CHECKPOINTS_MISSING_NOTICE = "checkpoints-not-reaching-s3"
_ATTEMPT_STATUS = {
    Outcome.COMPLETED: AttemptStatus.COMPLETED,
    Outcome.SPOT_UNAVAILABLE: AttemptStatus.INTERRUPTED,
    Outcome.STOPPED_BY_USER: AttemptStatus.STOPPED,
    Outcome.MAX_RUNTIME: AttemptStatus.STOPPED,
}


@dataclass(frozen=True)
class EndedAttempt:
    """An attempt that ended, with its run, its classification and DescribeTrainingJob's answer."""

    run: Run
    attempt: int
    rule: Rule
    describe: Mapping[str, Any]


def classify_ended(describe: Mapping[str, Any]) -> Rule:
    """The rule DescribeTrainingJob's answer matches (:mod:`spotline.domain.classify`)."""
    return classify(
        str(describe.get("TrainingJobStatus")),
        str(describe.get("SecondaryStatus") or ""),
        str(describe.get("FailureReason") or ""),
    )


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


class TrialEvents(Protocol):
    """What happens when a tuning run's trial ends (the tuning flow; the wiring plugs it in)."""

    def on_trial_ended(self, change: TrainingJobStateChange, describe: Mapping[str, Any]) -> StateOutcome: ...


@dataclass
class JobStateFlow:
    settings: Settings
    _: KW_ONLY
    ledger: RunLedger
    notices: Notices
    jobs: TrainingJobs
    publisher: RunPublisher
    relaunch_queue: RelaunchQueue
    prices: Mapping[str, float]
    catch_up: RunCatchUp
    trial_events: TrialEvents
    bucket: DropBucket
    clock: Callable[[], float] = time.time

    def on_job_ended(self, change: TrainingJobStateChange) -> StateOutcome:
        if change.tuning_job_arn or change.tags.get(TAG_KIND) == RunKind.TUNING.value:
            # A trial (the tuner names it; it carries its tuning run's tags): recorded as a trial.
            return self._not_an_attempt(change)
        identity = identify_job(self.settings.job_prefix, change.job_name, change.tags)
        if identity is None:
            return self._not_an_attempt(change)
        run_id, attempt = identity.run_id, identity.attempt
        if change.status not in TERMINAL_JOB_STATUSES:
            return StateOutcome("ignored", run_id, attempt, reason=f"status {change.status} is not terminal")
        run = self.ledger.get_run(run_id)
        describe: Mapping[str, Any] | None = None
        if run is None or run.status == RunStatus.PENDING or attempt > run.attempt:
            # The ledger is behind a job that exists (and is paid for): catch it up from the job.
            try:
                describe = self.jobs.describe(change.job_name)
                origin = self.catch_up.origin(run_id, attempt, describe, change.tags)
                run = self.catch_up.catch_up(run, origin)
            except JobNotFound:
                return StateOutcome("ignored", run_id, attempt, reason="SageMaker does not know this job")
            except NotCatchable as e:
                logger.error("job %s is not tracked: %s", change.job_name, e, extra={"run_id": run_id})
                return StateOutcome("ignored", run_id, attempt, reason=str(e))
        if attempt < run.attempt:
            return StateOutcome("stale", run_id, attempt, reason=f"the run is at attempt {run.attempt}")
        if attempt > run.attempt or run.status == RunStatus.PENDING:
            if run.status in TERMINAL_RUN_STATES and describe is not None:
                self._record_attempt(run, attempt, describe, classify_ended(describe))
                reason = f"the run was {run.status} before this attempt's job started; its cost is recorded"
                return StateOutcome("stale", run_id, attempt, reason=reason)
            raise RunNotCaughtUp(
                f"run {run_id} is {run.status} at attempt {run.attempt}; event for attempt {attempt}"
            )
        if run.status != RunStatus.RUNNING:
            settled_notice = notice_for(run.status, run.next.attempt if run.next else None)
            if self.notices.of_run(run_id).claimed(settled_notice):
                return StateOutcome("duplicate", run_id, attempt, reason=f"run already {run.status}")

        if describe is None:
            describe = self.jobs.describe(change.job_name)
        job_status = str(describe.get("TrainingJobStatus", change.status))
        if job_status not in TERMINAL_JOB_STATUSES:
            return StateOutcome("ignored", run_id, attempt, reason=f"DescribeTrainingJob says {job_status}")
        reason = str(describe.get("FailureReason") or "")
        rule = classify_ended(describe)
        self._record_attempt(run, attempt, describe, rule)
        logger.info(
            "job %s ended: %s -> %s",
            change.job_name,
            rule.outcome,
            rule.action,
            extra={"run_id": run_id, "attempt": attempt, "failure_reason": reason},
        )
        if run.policy is None:
            raise RuntimeError(f"run {run_id} is {run.status} without its recovery policy")

        ended = EndedAttempt(run, attempt, rule, describe)
        action = rule.action
        if action == Action.RELAUNCH_IF_CONTINUING and not run.policy.continue_after_max_runtime:
            return self._settle(
                ended,
                RunStatus.FAILED,
                "MaxRuntimeExceeded: the attempt used all of max_runtime "
                "(set job.continue_after_max_runtime to resume from checkpoints)",
            )
        if action == Action.PUBLISH:
            return self._settle(ended, RunStatus.SUCCEEDED, "")
        if run.cancel_reason and action not in (Action.CANCEL, Action.ALERT):
            return self._settle(ended, RunStatus.CANCELLED, f"cancelled: {run.cancel_reason}")
        if action == Action.CANCEL:
            return self._settle(ended, RunStatus.CANCELLED, "stopped by a person")
        if action == Action.ALERT:
            return self._settle(ended, RunStatus.FAILED, reason or rule.why)
        return self._relaunch(ended, run.policy)

    def _not_an_attempt(self, change: TrainingJobStateChange) -> StateOutcome:
        """A job not named like an attempt: a tuning run's trial (the tuner names those), or not ours.

        A trial is told by DescribeTrainingJob's ``TuningJobArn``, never by its name.
        """
        if change.status not in TERMINAL_JOB_STATUSES:
            return StateOutcome("ignored", reason=f"status {change.status} is not terminal")
        try:
            describe = self.jobs.describe(change.job_name)
        except JobNotFound:
            return StateOutcome("ignored", reason="SageMaker does not know this job")
        tuning_job_arn = describe.get("TuningJobArn") or change.tuning_job_arn
        if tuning_job_arn:
            return self.trial_events.on_trial_ended(change, {**describe, "TuningJobArn": tuning_job_arn})
        return StateOutcome("ignored", reason=f"{change.job_name} is not a spotline job")

    def _record_attempt(self, run: Run, attempt: int, describe: Mapping[str, Any], rule: Rule) -> Attempt:
        """Record how the attempt ended and how far it got; warn once if its checkpoints missed S3."""
        run_id = run.run_id
        end = describe.get("TrainingEndTime") or describe.get("LastModifiedTime")
        ended_at = parse_timestamp(end)
        earlier = [a for a in self.ledger.attempts(run_id) if a.attempt < attempt]
        # Where the attempt started: the last checkpoint an earlier attempt left (a run starts at 0).
        start = next((a.end_iteration for a in reversed(earlier) if a.end_iteration is not None), 0)
        recorded = self.ledger.attempt_ended(
            run_id,
            attempt,
            AttemptEnd(
                status=_ATTEMPT_STATUS.get(rule.outcome, AttemptStatus.FAILED),
                outcome=rule.outcome,
                job_status=str(describe.get("TrainingJobStatus")),
                secondary_status=describe.get("SecondaryStatus") or None,
                failure_reason=describe.get("FailureReason") or None,
                training_s=int(describe.get("TrainingTimeInSeconds") or 0),
                billable_s=int(describe.get("BillableTimeInSeconds") or 0),
                ended_at=iso_utc(ended_at.timestamp()) if ended_at else None,
                start_iteration=start,
                end_iteration=checkpoint_iteration(self.bucket, checkpoint_uri_of(describe)),
                reached_iteration=reached_iteration(final_metrics(describe), TRAIN_ITERATION),
            ),
        )
        # Only a run that goes on has work to lose (a settled run's late job is only counted).
        if run.status not in TERMINAL_RUN_STATES and rule.action in RELAUNCH_ACTIONS:
            self._warn_if_checkpoints_missing(run, recorded, describe)
        return recorded

    def _warn_if_checkpoints_missing(self, run: Run, attempt: Attempt, describe: Mapping[str, Any]) -> None:
        period = run.policy.checkpoint_period_s if run.policy else None
        ours = writes_our_pointer(describe, self.settings.image_uri)
        if not checkpoints_missing(attempt, period, pointer_expected=ours):
            return
        at = "no checkpoint" if attempt.end_iteration is None else f"iteration {attempt.end_iteration}"
        self.publisher.warn_once(
            run,
            CHECKPOINTS_MISSING_NOTICE,
            f"spotline: {run.label}: checkpoints are not reaching S3",
            {
                "kind": run.kind.value,
                "status": "WARNING",
                "config": run.source.key,
                "attempt": attempt.attempt,
                "reason": (
                    f"attempt {attempt.attempt} trained {attempt.training_s} s, longer than the checkpoint "
                    f"period ({period} s), and S3 holds {at} (it started at iteration "
                    f"{attempt.start_iteration}): an interruption loses everything since. Check that the "
                    "job writes to /opt/ml/checkpoints and its role may write the checkpoint prefix."
                ),
                "checkpoints": checkpoint_uri_of(describe),
                "start_iteration": attempt.start_iteration,
                "end_iteration": attempt.end_iteration,
                "checkpoint_period_s": period,
            },
        )

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
        # A completed job whose output is unusable settles FAILED: the outcome says what happened.
        action = settled.status.value.lower() if settled.action == "settled" else settled.action
        return StateOutcome(
            action, ended.run.run_id, ended.attempt, ended.rule.outcome.value, settled.reason or reason
        )

    def _relaunch(self, ended: EndedAttempt, policy: RunPolicy) -> StateOutcome:
        run, attempt, rule, describe = ended.run, ended.attempt, ended.rule, ended.describe
        run_id = run.run_id
        refusal = relaunch_refusal(run.first_request or {}, self.settings)
        if refusal is not None:
            return self._settle(ended, RunStatus.FAILED, f"cannot be relaunched: {refusal}")
        attempts = [a for a in self.ledger.attempts(run_id) if a.attempt <= attempt]
        ours = writes_our_pointer(describe, self.settings.image_uri)
        stuck = no_progress(attempts, policy.checkpoint_period_s, pointer_expected=ours)
        if stuck is not None:
            last = str(describe.get("FailureReason") or describe.get("SecondaryStatus") or rule.outcome)
            reason = f"{Cap.NO_PROGRESS} reached: {stuck} (last attempt: {last})"
            return self._settle(ended, RunStatus.FAILED, reason, cap=Cap.NO_PROGRESS.value)
        spent = spent_usd(attempts, self.prices, policy.instance_count)
        plan = plan_relaunch(policy, rule.action, run_id=run_id, attempts=attempts, spent_usd=spent)
        if isinstance(plan, CapReached):
            last = str(describe.get("FailureReason") or describe.get("SecondaryStatus") or rule.outcome)
            reason = f"{plan.cap} reached: {plan.detail} (last attempt: {last})"
            return self._settle(ended, RunStatus.FAILED, reason, cap=plan.cap.value)

        now = self.clock()
        try:
            run = self.ledger.mark_retrying(
                run_id,
                NextAttempt(
                    attempt=plan.attempt,
                    instance_type=plan.rung.instance_type,
                    spot=plan.rung.spot,
                    not_before=int(now + plan.delay_s),
                    reason=rule.outcome.value,
                ),
                now=now,
                expected=RunStatus.RUNNING,
                expected_attempt=attempt,
            )
        except TransitionRefused:
            current = self.ledger.get_run(run_id)
            if current is None or current.status != RunStatus.RETRYING or current.attempt != attempt:
                return StateOutcome("stale", run_id, attempt, rule.outcome.value, "the run moved on")
            run = current
        waiting = run.next
        if waiting is None:
            raise RuntimeError(f"run {run_id} is RETRYING without its next attempt")
        self.notices.of_run(run_id).send_once(
            f"relaunch-a{waiting.attempt:02d}",
            lambda: self.relaunch_queue.send(run_id, waiting.attempt, not_before=waiting.not_before, now=now),
            now=now,
        )
        failure = str(describe.get("FailureReason") or describe.get("SecondaryStatus") or "")
        sent = self.publisher.announce_retry(
            run,
            next_attempt=waiting.attempt,
            body={
                "kind": run.kind.value,
                "status": RunStatus.RETRYING.value,
                "config": run.source.key,
                "ended_attempt": attempt,
                "outcome": rule.outcome.value,
                "reason": failure,
                "next_attempt": waiting.attempt,
                "next_instance_type": waiting.instance_type,
                "next_spot": waiting.spot,
                "not_before": iso_utc(waiting.not_before),
                "checkpoints": run.checkpoint_uri,
            },
        )
        return StateOutcome(
            "retrying" if sent else "duplicate",
            run_id,
            attempt,
            rule.outcome.value,
            failure,
            waiting.attempt,
            int(waiting.not_before - now),
        )
