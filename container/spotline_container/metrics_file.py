"""The run's metric records under the checkpoint directory: what outlives the job and its logs.

SageMaker syncs ``/opt/ml/checkpoints`` to the run's ``checkpoints/`` prefix while the job runs and
restores it when the next attempt starts, so the file holds every attempt's points. It is
rewritten whole, atomically (temporary file, fsync, rename: the sync never uploads half a line),
at every metric period. Its size is bounded: past :data:`MAX_RECORDS` records the older half of
the points is thinned to every other one (events are always kept), so recent points stay at full
resolution and old ones fade out geometrically. Record format: :mod:`spotline.metric_names`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spotline.metric_names import ATTEMPT_INTERRUPTED, ATTEMPT_START, EVENTS, METRICS_FILE
from spotline_toolkit.checkpoints import atomic_write

log = logging.getLogger(__name__)

MAX_RECORDS = 20_000  # about 1.6 MB of JSON lines
MAX_READ_BYTES = 8 * 1024 * 1024  # a restored file larger than this (not ours) is read from its tail


def thin(records: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """At most ``limit`` records: every other point of the older half dropped until it fits."""
    while len(records) > limit:
        half = len(records) // 2
        older, newer = records[:half], records[half:]
        kept: list[dict[str, Any]] = []
        points = 0
        for record in older:
            if record.get("name") in EVENTS:
                kept.append(record)
                continue
            if points % 2 == 0:
                kept.append(record)
            points += 1
        if len(kept) == len(older):  # nothing left to thin (all events): drop the oldest
            kept = older[len(records) - limit :]
        records = kept + newer
    return records


def _read_existing(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_READ_BYTES:
                f.seek(size - MAX_READ_BYTES)
            data = f.read(MAX_READ_BYTES)
    except FileNotFoundError:
        return []
    except OSError as e:
        log.warning("metrics file %s is unreadable (%s); starting a new one", path, e)
        return []
    records = []
    lines = data.splitlines()
    if len(data) >= MAX_READ_BYTES and lines:
        lines = lines[1:]  # the first line was cut by the seek
    for raw in lines:
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("name"), str):
            records.append(record)
    return records


class MetricsFile:
    """Metric records of every attempt so far; :meth:`flush` writes them (rank 0 only)."""

    def __init__(
        self,
        directory: Path,
        attempt: int,
        *,
        max_records: int = MAX_RECORDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = directory / METRICS_FILE
        self.attempt, self.max_records, self.clock = attempt, max_records, clock
        self.records = thin(_read_existing(self.path), max_records)
        self._dirty = False

    def add(self, name: str, value: float, step: int, **extra: Any) -> None:
        number = float(value)
        record: dict[str, Any] = {
            "step": int(step),
            "name": name,
            "value": number if math.isfinite(number) else None,
            "wall": round(self.clock(), 3),
            "attempt": self.attempt,
            **extra,
        }
        self.records.append(record)
        if len(self.records) > self.max_records:
            self.records = thin(self.records, self.max_records)
        self._dirty = True

    def started(self, step: int, max_iter: int) -> None:
        self.add(ATTEMPT_START, step, step, max_iter=int(max_iter))

    def interrupted(self, step: int) -> None:
        self.add(ATTEMPT_INTERRUPTED, step, step)

    def flush(self) -> None:
        """Rewrite the file atomically if anything was added; a failure is logged, never raised."""
        if not self._dirty:
            return
        text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in self.records).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, lambda f: f.write(text))
        except OSError as e:  # the curves are a courtesy; training goes on
            log.warning("could not write the metrics file %s: %s", self.path, e)
            return
        self._dirty = False
