"""Runs left PENDING past their launch lease: counted every few minutes, so that an alarm fires.

A launch that keeps failing after ``CreateTrainingJob`` is caught up when its job ends
(:mod:`spotline.runs.catch_up`); one that never got that far leaves a run PENDING with nothing
watching it. The sweep reads the ``RUNS`` index (runs in creation order) over a bounded window —
runs created between :data:`LOOKBACK_S` and the launch lease ago, :data:`MAX_RUNS_EXAMINED` of
them at most, the newest first — so its cost does not grow with the table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass

from spotline.domain.settings import Settings
from spotline.ledger.runs import RunLedger
from spotline.runs.first_attempt import LAUNCH_LEASE_SECONDS

LOOKBACK_S = 24 * 3600  # a run stuck longer than a day has alarmed every sweep of that day
MAX_RUNS_EXAMINED = 1_000


@dataclass
class PendingWatch:
    settings: Settings
    _: KW_ONLY
    ledger: RunLedger
    clock: Callable[[], float] = time.time

    def stuck_runs(self) -> list[str]:
        """Ids of runs still PENDING although their launch lease ended (within the window)."""
        now = self.clock()
        return self.ledger.pending_runs_created_between(
            now - LOOKBACK_S, now - LAUNCH_LEASE_SECONDS, examine=MAX_RUNS_EXAMINED
        )
