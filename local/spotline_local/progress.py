"""Waiting on progress, not on the clock: a wait fails when nothing has moved for a while.

A fixed deadline fails a slow but healthy run on a busy machine and waits the whole deadline for a
stuck one. Here a wait takes a *progress* probe — any value that changes while the work moves (a
job's status, the iteration it logged, the functions' invocations) — and gives up only when that
value has not changed for ``stall_s`` seconds, saying what it last saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")
DEFAULT_STALL_S = 180.0


class Stalled(Exception):
    """Nothing moved for the stall limit while waiting; the message says for what and what was seen."""


def wait_for_progress(
    what: str,
    check: Callable[[], T | None],
    progress: Callable[[], Hashable],
    *,
    stall_s: float = DEFAULT_STALL_S,
    period_s: float = 1.0,
    on_change: Callable[[Hashable], None] | None = None,
    describe: Callable[[Hashable], str] = repr,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Poll ``check`` until it returns something; :class:`Stalled` once ``progress()`` stops changing.

    ``on_change`` sees every new progress value (to show it); the time spent waiting only counts
    against ``stall_s`` while nothing moves.
    """
    last = progress()
    moved_at = clock()
    while True:
        result = check()
        if result is not None:
            return result
        current = progress()
        now = clock()
        if current != last:
            last, moved_at = current, now
            if on_change is not None:
                on_change(current)
        elif now - moved_at >= stall_s:
            raise Stalled(
                f"nothing moved for {stall_s:.0f} s while waiting for {what} (last seen: {describe(last)})"
            )
        sleep(period_s)
