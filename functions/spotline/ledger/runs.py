"""Runs and their attempts in the ledger: creation with a launch lease, guarded transitions, notices.

A run item is created once per run id (a conditional put). The invocation that creates it holds
a *launch lease* until it has started the first job; a duplicate event arriving while the lease
is held backs off (raises, so it is retried later), and one arriving after the lease expired
takes the launch over — so a Lambda that timed out mid-launch never leaves a run stuck.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from spotline.ledger.table import GSI1, ConditionFailed, LedgerTable
from spotline.states import ALLOWED_TRANSITIONS, RunStatus
from spotline.timefmt import iso_utc as _iso

RUN_SK = "RUN"
RUNS_INDEX_PK = "RUNS"


def run_pk(run_id: str) -> str:
    return f"RUN#{run_id}"


def attempt_sk(attempt: int) -> str:
    return f"ATTEMPT#{attempt:02d}"


class TransitionRefused(Exception):
    """The run is not in a state from which this transition is allowed (e.g. already terminal)."""


class AttemptExists(Exception):
    """This attempt of the run was already recorded (a duplicate event or a concurrent relaunch)."""


@dataclass(frozen=True)
class RunSource:
    """The S3 object (or batch) a run came from."""

    bucket: str
    key: str
    version: str


class RunLedger:
    def __init__(self, table: LedgerTable) -> None:
        self.table = table

    def create_run(
        self,
        run_id: str,
        *,
        kind: str,
        source: RunSource,
        now: float,
        lease_seconds: int,
        attrs: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Create the run as PENDING with a launch lease; None if the run already exists."""
        created = _iso(now)
        item = {
            "pk": run_pk(run_id),
            "sk": RUN_SK,
            "run_id": run_id,
            "kind": kind,
            "status": RunStatus.PENDING.value,
            "source_bucket": source.bucket,
            "source_key": source.key,
            "source_version": source.version,
            "created_at": created,
            "updated_at": created,
            "lease_until": int(now) + lease_seconds,
            "attempt": 0,
            "gsi1pk": RUNS_INDEX_PK,
            "gsi1sk": f"{created}#{run_id}",
            **(attrs or {}),
        }
        try:
            self.table.put_new(item)
        except ConditionFailed:
            return None
        return item

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        return self.table.get(run_pk(run_id), RUN_SK)

    def take_over_launch(self, run_id: str, *, seen_lease_until: int, now: float, lease_seconds: int) -> bool:
        """Take an expired launch lease of a PENDING run; False if someone else holds or took it."""
        try:
            self.table.update(
                run_pk(run_id),
                RUN_SK,
                {"lease_until": int(now) + lease_seconds, "updated_at": _iso(now)},
                condition="#st = :pending AND lease_until = :seen",
                condition_values={
                    "#st": "status",
                    ":pending": RunStatus.PENDING.value,
                    ":seen": seen_lease_until,
                },
            )
        except ConditionFailed:
            return False
        return True

    def release_launch(self, run_id: str, *, now: float) -> None:
        """Give up this invocation's launch lease (it failed), so a retry can take over at once."""
        with contextlib.suppress(ConditionFailed):  # the run moved on: nothing to release
            self.table.update(
                run_pk(run_id),
                RUN_SK,
                {"lease_until": 0, "updated_at": _iso(now)},
                condition="#st = :pending",
                condition_values={"#st": "status", ":pending": RunStatus.PENDING.value},
            )

    def transition(
        self,
        run_id: str,
        to: RunStatus,
        *,
        now: float,
        expected: Iterable[RunStatus] | None = None,
        attrs: Mapping[str, Any] | None = None,
        expected_attempt: int | None = None,
    ) -> dict[str, Any]:
        """Move the run to ``to`` if it is in one of ``expected`` (default: every state allowed to)."""
        sources = (
            list(expected)
            if expected is not None
            else [s for s, targets in ALLOWED_TRANSITIONS.items() if to in targets]
        )
        illegal = [s for s in sources if to not in ALLOWED_TRANSITIONS.get(s, frozenset())]
        if illegal:
            raise ValueError(f"{', '.join(illegal)} -> {to} is not an allowed transition")
        values: dict[str, Any] = {f":from{i}": s.value for i, s in enumerate(sources)}
        condition = "#st IN (" + ", ".join(values) + ")"
        if expected_attempt is not None:
            condition += " AND attempt = :attempt"
            values[":attempt"] = expected_attempt
        try:
            return self.table.update(
                run_pk(run_id),
                RUN_SK,
                {"status": to.value, "updated_at": _iso(now), **(attrs or {})},
                condition=condition,
                condition_values={"#st": "status", **values},
            )
        except ConditionFailed as e:
            raise TransitionRefused(f"run {run_id}: not in {', '.join(sources)}; refused -> {to}") from e

    def record_attempt(self, run_id: str, attempt: int, attrs: Mapping[str, Any]) -> dict[str, Any]:
        """Record a new attempt of the run; :class:`AttemptExists` if it is already there."""
        item = {
            "pk": run_pk(run_id),
            "sk": attempt_sk(attempt),
            "run_id": run_id,
            "attempt": attempt,
            **attrs,
        }
        try:
            self.table.put_new(item)
        except ConditionFailed as e:
            raise AttemptExists(f"run {run_id} attempt {attempt} already recorded") from e
        return item

    def get_attempt(self, run_id: str, attempt: int) -> dict[str, Any] | None:
        return self.table.get(run_pk(run_id), attempt_sk(attempt))

    def update_attempt(
        self,
        run_id: str,
        attempt: int,
        attrs: Mapping[str, Any],
        *,
        only_if_status: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """Update an attempt; with ``only_if_status`` the write is refused (ConditionFailed) otherwise."""
        condition = None
        values: dict[str, Any] = {}
        if only_if_status is not None:
            statuses = list(only_if_status)
            values = {f":as{i}": s for i, s in enumerate(statuses)}
            condition = "#ast IN (" + ", ".join(values) + ")"
            values["#ast"] = "status"
        return self.table.update(
            run_pk(run_id), attempt_sk(attempt), attrs, condition=condition, condition_values=values
        )

    def attempts(self, run_id: str) -> list[dict[str, Any]]:
        return self.table.query(run_pk(run_id), "ATTEMPT#")

    def claim_notice(self, run_id: str, what: str, now: float) -> bool:
        """True exactly once per (run, what): the caller that gets True sends the notice."""
        try:
            self.table.put_new({"pk": run_pk(run_id), "sk": f"NOTICE#{what}", "sent_at": _iso(now)})
        except ConditionFailed:
            return False
        return True

    def notice_claimed(self, run_id: str, what: str) -> bool:
        """Whether the notice ``what`` of the run was already claimed."""
        return self.table.get(run_pk(run_id), f"NOTICE#{what}") is not None

    def release_notice(self, run_id: str, what: str) -> None:
        """Undo a claim whose notice could not be sent, so a retry sends it."""
        self.table.delete(run_pk(run_id), f"NOTICE#{what}")

    def send_notice_once(self, run_id: str, what: str, now: float, send: Callable[[], object]) -> bool:
        """Run ``send`` unless the notice was already claimed; a failed send leaves it unclaimed.

        True if this caller sent it. A retry after a failure sends it; a duplicate never does.
        """
        if not self.claim_notice(run_id, what, now):
            return False
        try:
            send()
        except Exception:
            self.release_notice(run_id, what)
            raise
        return True

    def recent_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        return self.table.query(RUNS_INDEX_PK, index=GSI1, limit=limit, newest_first=True)
