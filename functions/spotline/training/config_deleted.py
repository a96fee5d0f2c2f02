"""A config deleted from ``configs/`` cancels its runs: nothing is relaunched for a file that is gone.

The flow, for one S3 ``Object Deleted`` event under ``configs/``:

1. find the runs the key started (the ledger links each run to its source object; the newest
   :data:`MAX_RUNS_PER_CONFIG` uploads of the key are looked at, a bounded read);
2. spare the runs of the object the key holds *now*: S3 delivers events in any order, so the
   deletion of an old version may arrive after a new version was uploaded and launched;
   a permanently deleted version cancels that version's run only;
3. every other run still going is marked cancelled (a conditional write): a run waiting for its
   relaunch is settled CANCELLED at once with one alert, and its queued relaunch does nothing; a
   run whose job is running keeps its job (what is paid for is not thrown away) and is settled
   CANCELLED instead of relaunched when that job ends. A tuning run's tuning job is stopped: its
   tuner would go on starting trials (new spending) for a file that is gone; the trials that
   finished are kept, and the tuning job's end settles the run CANCELLED with them.

Every step is a conditional write or a send-once notice, so a redelivered event changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass

from spotline.adapters.drop_bucket import DropBucket
from spotline.adapters.tuning_jobs import TuningJobs
from spotline.domain import layout
from spotline.domain.events import ObjectDeleted
from spotline.domain.settings import Settings
from spotline.domain.states import TERMINAL_RUN_STATES
from spotline.ledger.records import Run
from spotline.ledger.runs import RunLedger
from spotline.runs.cancel import RunCanceller

logger = logging.getLogger(__name__)

MAX_RUNS_PER_CONFIG = 50


@dataclass(frozen=True)
class DeletionOutcome:
    """What one deletion did: the runs ``cancelled`` now, ``stopping`` after their job, or ``ignored``."""

    action: str
    key: str
    cancelled: tuple[str, ...] = ()
    stopping: tuple[str, ...] = ()
    reason: str = ""


@dataclass
class ConfigDeletion:
    """Cancels the runs of a deleted config."""

    settings: Settings
    _: KW_ONLY
    ledger: RunLedger
    canceller: RunCanceller
    bucket: DropBucket
    tuning: TuningJobs
    clock: Callable[[], float] = time.time

    def cancel_runs_of(self, obj: ObjectDeleted) -> DeletionOutcome:
        if obj.bucket != self.settings.bucket or not layout.is_config_key(obj.key):
            return DeletionOutcome("ignored", obj.key, reason="not a .yaml/.yml file under configs/")
        runs = [r for r in self._runs_gone_with(obj) if r.status not in TERMINAL_RUN_STATES]
        reason = f"its config {obj.key} was deleted"
        cancelled, stopping = [], []
        for found in runs:
            # The paid job keeps running: the run is settled CANCELLED when it ends.
            outcome = self.canceller.cancel(found.run_id, reason=reason, stop_job=False)
            if outcome.action == "cancelled":
                cancelled.append(outcome.run_id)
            elif outcome.action == "after-job":
                stopping.append(outcome.run_id)  # its job (or the relaunch creating it) ends the run
        logger.info(
            "config %s deleted: %d run(s) cancelled, %d stop after their job",
            obj.key,
            len(cancelled),
            len(stopping),
            extra={"key": obj.key, "cancelled": cancelled, "stopping": stopping},
        )
        return DeletionOutcome("cancelled" if runs else "ignored", obj.key, tuple(cancelled), tuple(stopping))

    def _runs_gone_with(self, obj: ObjectDeleted) -> list[Run]:
        """The key's runs whose object is gone: all but those of its current object."""
        runs = self.ledger.runs_of_source(obj.bucket, obj.key, limit=MAX_RUNS_PER_CONFIG)
        if obj.removed_version is not None:
            return [r for r in runs if r.source.version == obj.removed_version]
        current = self.bucket.current_version(obj.key)
        spared = {v for v in current or () if v}
        return [r for r in runs if r.source.version not in spared]
