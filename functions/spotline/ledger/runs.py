"""Runs and their attempts in the ledger: creation with a launch lease, guarded transitions.

Run items (``RUN#<run id>`` / ``RUN``, listed newest first by the ``RUNS`` index) and their
attempts (``ATTEMPT#NN``); keys in :mod:`spotline.ledger.keys`.

A run item is created once per run id (a conditional put). The invocation that creates it holds
a *launch lease* until it has started the first job; a duplicate event arriving while the lease
is held backs off (raises, so it is retried later), and one arriving after the lease expired
takes the launch over — so a Lambda that timed out mid-launch never leaves a run stuck.

What the first job is created with (policy, request, config snapshot) is written while the run
is still PENDING, *before* ``CreateTrainingJob``: a value the table cannot store is refused
before anything is paid for, and a run whose launch died after the create can be caught up from
its own record.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from spotline.domain.policy import RunPolicy
from spotline.domain.states import ALLOWED_TRANSITIONS, AttemptStatus, RunKind, RunStatus
from spotline.domain.timefmt import iso_utc
from spotline.ledger.keys import (
    ATTEMPT_PREFIX,
    RUN_SK,
    RUNS_INDEX_PK,
    SOURCE_RUN_PREFIX,
    attempt_sk,
    run_pk,
    source_pk,
    source_run_sk,
)
from spotline.ledger.records import (
    Attempt,
    AttemptEnd,
    InferencePart,
    NextAttempt,
    Run,
    RunSource,
    next_attempt_attrs,
)
from spotline.ledger.table import GSI1, ConditionFailed, LedgerTable


class TransitionRefused(Exception):
    """The run is not in a state from which this transition is allowed (e.g. already terminal)."""


class AttemptExists(Exception):
    """This attempt of the run was already recorded (a duplicate event or a concurrent relaunch)."""


class RunLedger:
    """Every read and write of run and attempt items; records in, records out."""

    def __init__(self, table: LedgerTable) -> None:
        self.table = table

    # -- runs ---------------------------------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        *,
        kind: RunKind,
        source: RunSource,
        now: float,
        lease_seconds: int,
        inference: InferencePart | None = None,
    ) -> Run | None:
        """Create the run as PENDING with a launch lease; None if the run already exists."""
        created = iso_utc(now)
        run = Run(
            run_id=run_id,
            kind=kind,
            status=RunStatus.PENDING,
            source=source,
            created_at=created,
            updated_at=created,
            lease_until=int(now) + lease_seconds,
            inference=inference,
        )
        item = {
            "pk": run_pk(run_id),
            "sk": RUN_SK,
            "gsi1pk": RUNS_INDEX_PK,
            "gsi1sk": f"{created}#{run_id}",
            **run.to_item(),
        }
        self._link_source(run)  # first: a run is never in the table without its link
        try:
            self.table.put_new(item)
        except ConditionFailed:
            return None
        return run

    def _link_source(self, run: Run) -> None:
        """Find the run from its source object later (a config deleted cancels its runs)."""
        self.table.update(
            source_pk(run.source.bucket, run.source.key),
            source_run_sk(run.created_at, run.run_id),
            {"run_id": run.run_id},
        )

    def runs_of_source(self, bucket: str, key: str, *, limit: int) -> list[Run]:
        """The runs started from the newest ``limit`` uploads of ``bucket``/``key`` (any version)."""
        links = self.table.query(
            source_pk(bucket, key), SOURCE_RUN_PREFIX, limit=limit, newest_first=True, projection=("run_id",)
        )
        run_ids = dict.fromkeys(str(link["run_id"]) for link in links)  # a redelivery links twice
        runs = (self.get_run(run_id) for run_id in run_ids)
        return [run for run in runs if run is not None]

    def get_run(self, run_id: str) -> Run | None:
        item = self.table.get(run_pk(run_id), RUN_SK)
        return Run.from_item(item) if item else None

    def recent_runs(self, limit: int = 50) -> list[Run]:
        items = self.table.query(RUNS_INDEX_PK, index=GSI1, limit=limit, newest_first=True)
        return [Run.from_item(i) for i in items]

    def pending_runs_created_between(self, start: float, end: float, *, examine: int) -> list[str]:
        """Ids of runs still PENDING that were created in [start, end), looking at ``examine`` runs
        at most (the newest of the window first): a bounded read, whatever the table holds."""
        items = self.table.query(
            RUNS_INDEX_PK,
            index=GSI1,
            sk_between=(iso_utc(start), iso_utc(end)),
            limit=examine,
            newest_first=True,
            projection=("run_id", "status"),
        )
        return [str(i["run_id"]) for i in items if i.get("status") == RunStatus.PENDING.value]

    def _update_run(
        self,
        run_id: str,
        attrs: Mapping[str, Any],
        *,
        now: float,
        status_in: Iterable[RunStatus],
        also: str = "",
        values: Mapping[str, Any] | None = None,
    ) -> Run:
        """SET ``attrs`` (and ``updated_at``) if the run's status is one of ``status_in`` and ``also``
        holds; :class:`TransitionRefused` otherwise."""
        statuses = list(status_in)
        placeholders = {f":st{i}": s.value for i, s in enumerate(statuses)}
        condition = "#st IN (" + ", ".join(placeholders) + ")" + (f" AND {also}" if also else "")
        try:
            item = self.table.update(
                run_pk(run_id),
                RUN_SK,
                {**attrs, "updated_at": iso_utc(now)},
                condition=condition,
                condition_values={"#st": "status", **placeholders, **(values or {})},
            )
        except ConditionFailed as e:
            refused = ", ".join(statuses)
            raise TransitionRefused(f"run {run_id}: not in {refused} (or {also or 'moved on'})") from e
        return Run.from_item(item)

    def take_over_launch(self, run_id: str, *, seen_lease_until: int, now: float, lease_seconds: int) -> bool:
        """Take an expired launch lease of a PENDING run; False if someone else holds or took it."""
        try:
            self._update_run(
                run_id,
                {"lease_until": int(now) + lease_seconds},
                now=now,
                status_in=[RunStatus.PENDING],
                also="lease_until = :seen",
                values={":seen": seen_lease_until},
            )
        except TransitionRefused:
            return False
        return True

    def release_launch(self, run_id: str, *, now: float) -> None:
        """Give up this invocation's launch lease (it failed), so a retry can take over at once."""
        with contextlib.suppress(TransitionRefused):  # the run moved on: nothing to release
            self._update_run(run_id, {"lease_until": 0}, now=now, status_in=[RunStatus.PENDING])

    def record_launch(
        self,
        run_id: str,
        *,
        policy: RunPolicy,
        first_request: Mapping[str, Any],
        config_key: str | None,
        now: float,
        tuning_job: str | None = None,
    ) -> Run:
        """Keep what the first job (or tuning job) is created with, while the run is PENDING
        (before the create).

        Raises :class:`spotline.ledger.table.UnstorableValue` for a value the table cannot hold
        and :class:`TransitionRefused` if the run is no longer PENDING.
        """
        attrs: dict[str, Any] = {
            "policy": policy.to_item(),
            "first_request": dict(first_request),
            "config_key": config_key,
        }
        if tuning_job:  # the run was created before its config was read: this makes it a tuning run
            attrs |= {"tuning_jobs": [tuning_job], "kind": RunKind.TUNING.value}
        return self._update_run(run_id, attrs, now=now, status_in=[RunStatus.PENDING])

    def start_follow_up(self, run_id: str, tuning_job: str, *, now: float) -> Run:
        """A RUNNING tuning run moves on to its follow-up tuning job (its second): claimed once,
        before the create; :class:`TransitionRefused` if the run is not at its first tuning job."""
        run = self.get_run(run_id)
        if run is None or len(run.tuning_jobs) != 1:
            raise TransitionRefused(f"run {run_id}: not a tuning run at its first tuning job")
        return self._update_run(
            run_id,
            {"attempt": 2, "tuning_jobs": [*run.tuning_jobs, tuning_job]},
            now=now,
            status_in=[RunStatus.RUNNING],
            also="attempt = :one",
            values={":one": 1},
        )

    def note_stop(self, run_id: str, reason: str, *, now: float) -> bool:
        """Spotline stops the run's tuning job (a cap): keep why, once; False if already noted."""
        try:
            self._update_run(
                run_id,
                {"stop_reason": reason},
                now=now,
                status_in=[RunStatus.PENDING, RunStatus.RUNNING],
                also="attribute_not_exists(stop_reason)",
            )
        except TransitionRefused:
            return False
        return True

    def note_promotion(self, run_id: str, summary: str, *, now: float) -> Run:
        """What a succeeded run's promotion gate decided, in words (``not promoted: ...``)."""
        return self._update_run(run_id, {"promotion": summary}, now=now, status_in=[RunStatus.SUCCEEDED])

    def request_cancel(self, run_id: str, *, reason: str, now: float) -> Run:
        """A person cancelled the run: no attempt starts after this (its current job may finish).

        :class:`TransitionRefused` if the run is settled already.
        """
        return self._update_run(
            run_id,
            {"cancel_reason": reason},
            now=now,
            status_in=[RunStatus.PENDING, RunStatus.RUNNING, RunStatus.RETRYING],
        )

    def claim_relaunch(self, run_id: str, attempt: int, *, now: float) -> Run:
        """The relaunch of ``attempt`` is about to create its job: a cancel must now wait for it.

        :class:`TransitionRefused` if the run no longer waits for ``attempt`` or was cancelled.
        """
        return self._update_run(
            run_id,
            {"launching_attempt": attempt},
            now=now,
            status_in=[RunStatus.RETRYING],
            also="next_attempt = :n AND attribute_not_exists(cancel_reason)",
            values={":n": attempt},
        )

    def mark_running(
        self,
        run_id: str,
        *,
        attempt: int,
        now: float,
        expected: RunStatus,
        expected_attempt: int | None = None,
    ) -> Run:
        """The run's ``attempt`` has its job: PENDING or RETRYING -> RUNNING."""
        return self._transition(
            run_id,
            RunStatus.RUNNING,
            now=now,
            expected=[expected],
            expected_attempt=expected_attempt,
            attrs={"attempt": attempt},
        )

    def mark_retrying(
        self,
        run_id: str,
        next_attempt: NextAttempt,
        *,
        now: float,
        expected: RunStatus,
        expected_attempt: int | None = None,
        create_quota_hits: int | None = None,
    ) -> Run:
        """The run waits for ``next_attempt`` (its relaunch is on the delay queue)."""
        attrs: dict[str, Any] = next_attempt_attrs(next_attempt)
        if create_quota_hits is not None:
            attrs["create_quota_hits"] = create_quota_hits
        return self._transition(
            run_id,
            RunStatus.RETRYING,
            now=now,
            expected=[expected],
            expected_attempt=expected_attempt,
            attrs=attrs,
        )

    def defer_for_quota(self, run_id: str, *, attempt: int, hits: int, not_before: int, now: float) -> Run:
        """A RETRYING run's create hit a quota: the same attempt waits until ``not_before`` (and its
        relaunch gives its claim up: a cancel need not wait for it)."""
        return self._update_run(
            run_id,
            {"create_quota_hits": hits, "not_before": not_before, "launching_attempt": None},
            now=now,
            status_in=[RunStatus.RETRYING],
            also="next_attempt = :n",
            values={":n": attempt},
        )

    def settle(
        self,
        run_id: str,
        to: RunStatus,
        *,
        now: float,
        expected: Iterable[RunStatus],
        attempt: int | None,
        outcome: str,
        reason: str,
        cap: str | None = None,
        unless_relaunching: bool = False,
    ) -> Run:
        """Move the run to a terminal state after ``attempt`` (None: whatever attempt it is at).

        ``unless_relaunching``: refused while a relaunch has claimed the attempt the run waits for
        (its job may be being created: the relaunch finishes, and the run is settled after it).
        """
        return self._transition(
            run_id,
            to,
            now=now,
            expected=expected,
            expected_attempt=attempt,
            attrs={"outcome": outcome, "reason": reason, "finished_at": iso_utc(now), "cap": cap},
            also="(attribute_not_exists(launching_attempt) OR launching_attempt <> next_attempt)"
            if unless_relaunching
            else "",
        )

    def reject(self, run_id: str, *, errors: Iterable[str], report_key: str, now: float) -> Run:
        """A config that must not start a job: PENDING -> REJECTED."""
        return self._transition(
            run_id,
            RunStatus.REJECTED,
            now=now,
            expected=[RunStatus.PENDING],
            attrs={"errors": list(errors), "report_key": report_key, "finished_at": iso_utc(now)},
        )

    def fail_launch(self, run_id: str, *, reason: str, now: float) -> Run:
        """SageMaker refused the first job itself: PENDING -> FAILED."""
        return self._transition(
            run_id,
            RunStatus.FAILED,
            now=now,
            expected=[RunStatus.PENDING],
            attrs={"errors": [reason], "reason": reason, "finished_at": iso_utc(now)},
        )

    def _transition(
        self,
        run_id: str,
        to: RunStatus,
        *,
        now: float,
        expected: Iterable[RunStatus],
        attrs: Mapping[str, Any],
        expected_attempt: int | None = None,
        also: str = "",
    ) -> Run:
        sources = list(expected)
        illegal = [s for s in sources if to not in ALLOWED_TRANSITIONS.get(s, frozenset())]
        if illegal:
            raise ValueError(f"{', '.join(illegal)} -> {to} is not an allowed transition")
        at_attempt = {} if expected_attempt is None else {":attempt": expected_attempt}
        conditions = [c for c in ("attempt = :attempt" if at_attempt else "", also) if c]
        return self._update_run(
            run_id,
            {"status": to.value, **attrs},
            now=now,
            status_in=sources,
            also=" AND ".join(conditions),
            values=at_attempt,
        )

    # -- attempts -----------------------------------------------------------------------------------

    def record_attempt(self, attempt: Attempt) -> Attempt:
        """Record a new attempt of a run; :class:`AttemptExists` if it is already there."""
        item = {"pk": run_pk(attempt.run_id), "sk": attempt_sk(attempt.attempt), **attempt.to_item()}
        try:
            self.table.put_new(item)
        except ConditionFailed as e:
            raise AttemptExists(f"run {attempt.run_id} attempt {attempt.attempt} already recorded") from e
        return attempt

    def get_attempt(self, run_id: str, attempt: int) -> Attempt | None:
        item = self.table.get(run_pk(run_id), attempt_sk(attempt))
        return Attempt.from_item(item) if item else None

    def attempts(self, run_id: str) -> list[Attempt]:
        return [Attempt.from_item(i) for i in self.table.query(run_pk(run_id), ATTEMPT_PREFIX)]

    def attempt_launched(self, run_id: str, attempt: int, *, now: float) -> None:
        """The attempt's job exists: LAUNCHING -> IN_PROGRESS (an attempt already ended stays ended)."""
        with contextlib.suppress(ConditionFailed):
            self.table.update(
                run_pk(run_id),
                attempt_sk(attempt),
                {"status": AttemptStatus.IN_PROGRESS.value, "launched_at": iso_utc(now)},
                condition="#st = :launching",
                condition_values={"#st": "status", ":launching": AttemptStatus.LAUNCHING.value},
            )

    def attempt_ended(self, run_id: str, attempt: int, end: AttemptEnd) -> Attempt:
        item = self.table.update(run_pk(run_id), attempt_sk(attempt), end.to_attrs())
        return Attempt.from_item(item)

    def attempt_refused(self, run_id: str, attempt: int, reason: str) -> Attempt:
        """SageMaker refused to create this attempt's job."""
        item = self.table.update(
            run_pk(run_id),
            attempt_sk(attempt),
            {"status": AttemptStatus.FAILED.value, "failure_reason": reason},
        )
        return Attempt.from_item(item)
