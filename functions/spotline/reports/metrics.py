"""The run's metrics file read back: curves per metric and attempt, and where attempts started or stopped.

The file (``runs/<run-id>/checkpoints/metrics.jsonl``, format in :mod:`spotline.metric_names`) is
bounded by the container, but a foreign container may write anything there, so reading is bounded
twice: only its last :data:`MAX_METRICS_BYTES` are read (the newest points; the page says so), and
every curve is thinned to at most :data:`MAX_POINTS_PER_CURVE` points, evenly spaced, its first and
last kept (at most :data:`MAX_CURVES` curves, :data:`MAX_MARKS` marks of each kind). Bad lines (a
torn last line, a stranger's JSON) are skipped and counted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spotline.metric_names import ATTEMPT_INTERRUPTED, ATTEMPT_START

MAX_METRICS_BYTES = 8 * 1024 * 1024
MAX_POINTS_PER_CURVE = 500
MAX_CURVES = 64  # (metric, attempt) pairs; a file naming more is not ours, the rest is left out
MAX_MARKS = 1_000

Point = tuple[int, float]


@dataclass(frozen=True)
class Mark:
    """An event of the file: an attempt started at ``step`` (of ``max_iter``) or was interrupted there."""

    attempt: int
    step: int
    wall: float | None = None
    max_iter: int | None = None


@dataclass(frozen=True)
class Curve:
    """One metric of one attempt, in step order."""

    name: str
    attempt: int
    points: tuple[Point, ...]


@dataclass(frozen=True)
class RunCurves:
    curves: tuple[Curve, ...] = ()
    starts: tuple[Mark, ...] = ()
    interruptions: tuple[Mark, ...] = ()
    records: int = 0
    skipped_lines: int = 0
    thinned_from: int = 0  # points before thinning (0: nothing thinned)
    truncated: bool = False  # only the file's tail was read
    last: Mapping[int, tuple[int, float | None]] = field(default_factory=dict)  # attempt -> (step, wall)

    def of(self, name: str) -> list[Curve]:
        return [c for c in self.curves if c.name == name]

    @property
    def attempts(self) -> list[int]:
        seen = {c.attempt for c in self.curves} | {m.attempt for m in self.starts}
        return sorted(seen)

    @property
    def max_iter(self) -> int | None:
        known = [m.max_iter for m in self.starts if m.max_iter]
        return known[-1] if known else None

    @property
    def last_step(self) -> int | None:
        steps = [s for s, _ in self.last.values()]
        return max(steps) if steps else None

    def resumed_at(self, attempt: int) -> int | None:
        """The step attempt ``attempt`` started from (its first start mark), if it left one."""
        return next((m.step for m in self.starts if m.attempt == attempt), None)

    def rate(self, attempt: int) -> float | None:
        """Steps per second of ``attempt`` so far, from its start mark to its last record."""
        start = next((m for m in reversed(self.starts) if m.attempt == attempt and m.wall), None)
        last = self.last.get(attempt)
        if start is None or last is None or last[1] is None or start.wall is None:
            return None
        seconds, steps = last[1] - start.wall, last[0] - start.step
        return steps / seconds if seconds > 0 and steps > 0 else None


def _whole(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or abs(value) > 2**53:
        return None
    return int(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _records(data: bytes) -> tuple[list[Any], int]:
    lines = [line for line in data.splitlines() if line.strip()]
    try:  # one C-level parse for the whole file; per line only if some line is bad
        parsed: list[Any] = json.loads(b"[" + b",".join(lines) + b"]")
        return parsed, 0
    except ValueError:
        pass
    good: list[Any] = []
    for line in lines:
        try:
            good.append(json.loads(line))
        except ValueError:
            continue
    return good, len(lines) - len(good)


def thin_points(points: Sequence[Point], limit: int) -> tuple[Point, ...]:
    """At most ``limit`` points, evenly spaced by index, the first and the last kept."""
    n = len(points)
    if n <= limit:
        return tuple(points)
    if limit < 2:
        return (points[-1],)
    step = (n - 1) / (limit - 1)
    return tuple(points[round(i * step)] for i in range(limit))


def parse_metrics(
    data: bytes, *, max_points: int = MAX_POINTS_PER_CURVE, truncated: bool = False
) -> RunCurves:
    """Curves and marks of the file's bytes (only the last :data:`MAX_METRICS_BYTES` are looked at)."""
    if len(data) > MAX_METRICS_BYTES:
        data = data[-MAX_METRICS_BYTES:]
        truncated = True
    if truncated:
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""  # the first line may be cut
    raw, skipped = _records(data)
    series: dict[tuple[str, int], list[Point]] = {}
    starts: list[Mark] = []
    interruptions: list[Mark] = []
    last: dict[int, tuple[int, float | None]] = {}
    for record in raw:
        if not isinstance(record, dict) or not isinstance(record.get("name"), str):
            skipped += 1
            continue
        step, attempt = _whole(record.get("step")), _whole(record.get("attempt"))
        if step is None or step < 0:
            skipped += 1
            continue
        attempt = attempt if attempt is not None and attempt >= 0 else 0
        wall = _number(record.get("wall"))
        name = record["name"]
        if name == ATTEMPT_START:
            if len(starts) < MAX_MARKS:
                starts.append(Mark(attempt, step, wall, _whole(record.get("max_iter"))))
        elif name == ATTEMPT_INTERRUPTED:
            if len(interruptions) < MAX_MARKS:
                interruptions.append(Mark(attempt, step, wall))
        else:
            value = _number(record.get("value"))
            key = (name[:100], attempt)
            if value is not None and (key in series or len(series) < MAX_CURVES):
                series.setdefault(key, []).append((step, value))
        if step >= last.get(attempt, (-1, None))[0]:
            last[attempt] = (step, wall)
    total = sum(len(p) for p in series.values())
    curves = []
    for (name, attempt), points in sorted(series.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        points.sort(key=lambda p: p[0])
        curves.append(Curve(name, attempt, thin_points(points, max_points)))
    kept = sum(len(c.points) for c in curves)
    return RunCurves(
        curves=tuple(curves),
        starts=tuple(starts),
        interruptions=tuple(interruptions),
        records=len(raw),
        skipped_lines=skipped,
        thinned_from=total if kept < total else 0,
        truncated=truncated,
        last=last,
    )
