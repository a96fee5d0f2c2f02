"""A run's report.html from metrics files of growing size: page size and render time, side by side.

Each file holds two attempts (the second resuming where the first was interrupted) of train/loss,
train/lr and val/mAP50 points, as the container writes them; the largest has 1,000,000 points
(about 80 MB), more than the page reads (its last 8 MiB), so the render is bounded by the read
cap and the per-curve thinning, not by the file. Timed: parse + render, the median of 5 runs.

    .venv/bin/python benchmarks/bench_report.py
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions")]

from spotline.metric_names import ATTEMPT_INTERRUPTED, ATTEMPT_START, TRAIN_LOSS, TRAIN_LR, VAL_MAP50  # noqa: E402
from spotline.reports.metrics import MAX_METRICS_BYTES, parse_metrics  # noqa: E402
from spotline.reports.run_page import RunPage, render_run_page  # noqa: E402

SIZES = (1_000, 10_000, 100_000, 1_000_000)
RUNS = 5
PAGE_LIMIT = 2 * 1024 * 1024
TIME_LIMIT_S = 2.0
REPORT = {
    "run_id": "bench-0123",
    "status": "SUCCEEDED",
    "source": {"bucket": "drop", "key": "configs/bench.yaml", "version": "v1"},
    "attempts": [
        {"attempt": 1, "job_name": "bench-a01", "instance_type": "ml.g4dn.xlarge", "spot": True},
        {"attempt": 2, "job_name": "bench-a02", "instance_type": "ml.g4dn.xlarge", "spot": True},
    ],
    "savings": {
        "training_s": 7200,
        "billable_s": 2160,
        "estimated_cost_usd": 0.44,
        "on_demand_usd": 1.47,
        "savings_usd": 1.03,
        "savings_pct": 70.0,
    },
}


def metrics_file(points: int) -> bytes:
    stop = points // 6  # three metrics a step: the interruption at half the steps
    lines = [
        {"step": 0, "name": ATTEMPT_START, "value": 0, "wall": 0.0, "attempt": 1, "max_iter": points // 3}
    ]
    for step in range(points // 3):
        attempt = 1 if step <= stop else 2
        if step == stop + 1:
            lines.append(
                {"step": stop, "name": ATTEMPT_INTERRUPTED, "value": stop, "wall": step, "attempt": 1}
            )
            lines.append({"step": stop, "name": ATTEMPT_START, "value": stop, "wall": step, "attempt": 2})
        wall = float(step)
        lines.append(
            {"step": step, "name": TRAIN_LOSS, "value": 1 / (1 + step), "wall": wall, "attempt": attempt}
        )
        lines.append({"step": step, "name": TRAIN_LR, "value": 0.01, "wall": wall, "attempt": attempt})
        lines.append({"step": step, "name": VAL_MAP50, "value": 0.5, "wall": wall, "attempt": attempt})
    return "".join(json.dumps(r) + "\n" for r in lines).encode()


def main() -> int:
    header = ("points", "file MB", "read MB", "drawn", "page KB", "median s", "max s")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (10, 8, 8, 7, 8, 9, 7), strict=True)))
    ok = True
    for points in SIZES:
        data = metrics_file(points)
        times, html = [], ""
        for _ in range(RUNS):
            start = time.perf_counter()
            curves = parse_metrics(data)
            html = render_run_page(RunPage(report=REPORT, curves=curves, generated_at="bench"))
            times.append(time.perf_counter() - start)
        drawn = sum(len(c.points) for c in curves.curves)
        size = len(html.encode())
        median = statistics.median(times)
        print(
            f"{points:>10,} {len(data) / 1e6:>8.1f} {min(len(data), MAX_METRICS_BYTES) / 1e6:>8.1f} "
            f"{drawn:>7,} {size / 1024:>8.0f} {median:>9.3f} {max(times):>7.3f}"
        )
        ok = ok and size < PAGE_LIMIT and median < TIME_LIMIT_S
    verdict = "met" if ok else "MISSED"
    print(f"targets: page < {PAGE_LIMIT // 1024 // 1024} MB, render < {TIME_LIMIT_S:.0f} s: {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
