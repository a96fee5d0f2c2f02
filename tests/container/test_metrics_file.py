"""The metrics file under the checkpoint folder: every attempt's points, bounded, rewritten atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path

from spotline.metric_names import ATTEMPT_INTERRUPTED, ATTEMPT_START, METRICS_FILE, TRAIN_LOSS
from spotline.reports.metrics import parse_metrics
from spotline_container.env import SageMakerEnvironment
from spotline_container.metrics_file import MAX_READ_BYTES, MetricsFile, thin


def lines(folder: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in (folder / METRICS_FILE).read_text().splitlines()]


def test_a_resumed_attempt_appends_to_what_the_last_one_left(tmp_path: Path) -> None:
    first = MetricsFile(tmp_path, 1, clock=lambda: 100.0)
    first.started(0, 300)
    first.add(TRAIN_LOSS, 0.9, 10)
    first.interrupted(10)
    first.flush()
    second = MetricsFile(tmp_path, 2, clock=lambda: 200.0)  # SageMaker restored the folder
    second.started(10, 300)
    second.add(TRAIN_LOSS, math.nan, 20)
    second.flush()
    assert [(r["name"], r["attempt"], r["step"]) for r in lines(tmp_path)] == [
        (ATTEMPT_START, 1, 0),
        (TRAIN_LOSS, 1, 10),
        (ATTEMPT_INTERRUPTED, 1, 10),
        (ATTEMPT_START, 2, 10),
        (TRAIN_LOSS, 2, 20),
    ]
    assert lines(tmp_path)[-1]["value"] is None  # NaN is not JSON: written as null
    assert [p.name for p in tmp_path.iterdir()] == [METRICS_FILE]  # no temporary left behind


def test_the_file_stays_bounded_and_keeps_every_event(tmp_path: Path) -> None:
    file = MetricsFile(tmp_path, 1, max_records=1_000)
    file.started(0, 100_000)
    for step in range(20_000):
        file.add(TRAIN_LOSS, 1.0, step)
        if step == 5_000:
            file.interrupted(step)
    file.flush()
    written = lines(tmp_path)
    assert len(written) <= 1_000
    assert [r["name"] for r in written if r["name"] != TRAIN_LOSS] == [ATTEMPT_START, ATTEMPT_INTERRUPTED]
    steps = [r["step"] for r in written if r["name"] == TRAIN_LOSS]
    assert steps == sorted(steps) and steps[-1] == 19_999
    recent = [s for s in steps if s >= 19_000]
    assert len(recent) > len([s for s in steps if s < 1_000])  # new points dense, old ones thinned


def test_thinning_never_loops_on_events_alone() -> None:
    events = [{"name": ATTEMPT_START, "step": i} for i in range(50)]
    assert len(thin(events, 10)) == 10


def test_a_foreign_oversized_or_broken_file_is_read_from_its_tail(tmp_path: Path) -> None:
    (tmp_path / METRICS_FILE).write_bytes(
        b"x" * (MAX_READ_BYTES + 10) + b'\n{"name": "train/loss", "step": 3}\n[]\n'
    )
    file = MetricsFile(tmp_path, 1)
    assert file.records == [{"name": "train/loss", "step": 3}]


def test_what_the_container_writes_is_what_the_report_reads(tmp_path: Path) -> None:
    file = MetricsFile(tmp_path, 3)
    file.started(40, 80)
    for step in range(41, 81):
        file.add(TRAIN_LOSS, 1 / step, step)
    file.flush()
    curves = parse_metrics((tmp_path / METRICS_FILE).read_bytes())
    assert curves.resumed_at(3) == 40 and curves.max_iter == 80 and curves.last_step == 80
    assert [len(c.points) for c in curves.of(TRAIN_LOSS)] == [40]


def test_the_attempt_comes_from_the_job_environment(tmp_path: Path) -> None:
    base = {"SAGEMAKER_BASE_DIR": str(tmp_path)}
    assert SageMakerEnvironment.from_env({**base, "SPOTLINE_ATTEMPT": "2"}).attempt == 2
    assert SageMakerEnvironment.from_env({**base, "SPOTLINE_ATTEMPT": "two"}).attempt == 0
    assert SageMakerEnvironment.from_env(base).attempt == 0
