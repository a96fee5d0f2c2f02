"""The pages' pure code: the metrics file read back (bounded, thinned), charts, wording, escaping."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from spotline.metric_names import ATTEMPT_INTERRUPTED, ATTEMPT_START, TRAIN_LOSS, TRAIN_LR, VAL_MAP50
from spotline.reports.batch_page import BatchPage, render_batch_page
from spotline.reports.chart import nice_ticks
from spotline.reports.metrics import MAX_METRICS_BYTES, MAX_POINTS_PER_CURVE, parse_metrics, thin_points
from spotline.reports.page import savings_sentence
from spotline.reports.run_page import RunPage, render_run_page

MAX_PAGE_BYTES = 2 * 1024 * 1024


def records(points: int, *, interrupt_at: int | None = None) -> bytes:
    """A metrics file of two attempts (the second resuming where the first stopped), ``points`` in all."""
    stop = interrupt_at if interrupt_at is not None else points // 2
    lines: list[dict[str, Any]] = [
        {"step": 0, "name": ATTEMPT_START, "value": 0, "wall": 0.0, "attempt": 1, "max_iter": points}
    ]
    for step in range(points):
        attempt = 1 if step <= stop else 2
        if step == stop + 1:
            lines.append(
                {"step": stop, "name": ATTEMPT_INTERRUPTED, "value": stop, "wall": float(step), "attempt": 1}
            )
            lines.append(
                {
                    "step": stop,
                    "name": ATTEMPT_START,
                    "value": stop,
                    "wall": float(step),
                    "attempt": 2,
                    "max_iter": points,
                }
            )
        lines.append(
            {
                "step": step,
                "name": TRAIN_LOSS,
                "value": 1 / (1 + step),
                "wall": float(step),
                "attempt": attempt,
            }
        )
    return "".join(json.dumps(r) + "\n" for r in lines).encode()


def report(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "run_id": "rail-0123",
        "kind": "training",
        "status": "SUCCEEDED",
        "source": {"bucket": "drop", "key": "configs/rail.yaml", "version": "v1"},
        "attempts": [
            {
                "attempt": 1,
                "job_name": "j-a01",
                "instance_type": "ml.g4dn.xlarge",
                "spot": True,
                "status": "INTERRUPTED",
            },
            {
                "attempt": 2,
                "job_name": "j-a02",
                "instance_type": "ml.g4dn.xlarge",
                "spot": True,
                "status": "COMPLETED",
            },
        ],
        "savings": {
            "training_s": 100,
            "billable_s": 30,
            "estimated_cost_usd": 0.0061,
            "on_demand_usd": 0.0204,
            "savings_usd": 0.0143,
            "savings_pct": 70.0,
        },
        "final_metrics": {VAL_MAP50: 0.71},
    }
    return {**base, **overrides}


def test_a_million_points_still_make_a_small_page_and_the_thinning_shows() -> None:
    data = records(1_000_000)
    assert len(data) > MAX_METRICS_BYTES  # the file itself is larger than what is read of it
    curves = parse_metrics(data)
    assert curves.truncated and curves.thinned_from > MAX_POINTS_PER_CURVE
    assert all(len(c.points) <= MAX_POINTS_PER_CURVE for c in curves.curves)
    html = render_run_page(RunPage(report=report(), curves=curves, generated_at="2026-11-27T00:00:00Z"))
    assert len(html.encode()) < MAX_PAGE_BYTES
    assert "only its newest points are drawn" in html and "thinned evenly per curve" in html


def test_two_attempts_and_the_interruption_are_drawn_where_they_happened() -> None:
    curves = parse_metrics(records(400, interrupt_at=150))
    assert [(m.attempt, m.step) for m in curves.interruptions] == [(1, 150)]
    assert curves.resumed_at(2) == 150 and curves.max_iter == 400
    html = render_run_page(RunPage(report=report(), curves=curves, generated_at="now"))
    attempts = set(re.findall(r'<polyline data-attempt="(\d+)" data-metric="train/loss"', html))
    assert attempts == {"1", "2"}
    assert 'data-interrupted-at="150" data-attempt="1"' in html
    assert 'data-resumed-at="150" data-attempt="2"' in html
    assert "0 iterations" in html  # attempt 1's work lost: it stopped where attempt 2 resumed


def test_torn_and_foreign_lines_are_skipped_not_fatal() -> None:
    data = records(20) + b"[1, 2]\nnot json\n" + json.dumps({"name": TRAIN_LR, "step": "x"}).encode() + b"\n"
    data += b'{"name": "train/loss", "step": 21, "val'  # the line being written
    curves = parse_metrics(data)
    assert curves.skipped_lines == 4
    assert sum(len(c.points) for c in curves.of(TRAIN_LOSS)) == 20


def test_thinning_keeps_the_first_and_last_points() -> None:
    points = [(i, float(i)) for i in range(10_001)]
    thinned = thin_points(points, 500)
    assert len(thinned) == 500 and thinned[0] == points[0] and thinned[-1] == points[-1]
    assert thin_points(points[:3], 500) == tuple(points[:3])


def test_the_money_is_worded_as_everywhere_else() -> None:
    assert savings_sentence(report()["savings"]) == (
        "cost $0.0061, on-demand would have cost $0.0204, saved $0.0143 (70 %)"
    )
    assert savings_sentence({"training_s": 0}) == "no compute billed yet"


def test_the_page_makes_no_request_and_escapes_what_users_wrote() -> None:
    evil = '<img src="https://evil.example/x.png" onerror="alert(1)">'
    html = render_run_page(
        RunPage(
            report=report(
                reason=evil, source={"bucket": "drop", "key": f"configs/{evil}.yaml", "version": evil}
            ),
            curves=parse_metrics(records(50)),
            generated_at="now",
            config_text=f"job: {evil}\n</pre><script>alert(2)</script>",
        )
    )
    assert "<script" not in html and "<img" not in html
    assert not re.search(r"<[^>]*\sonerror=", html)
    assert "default-src 'none'" in html  # the page's own policy refuses any request
    assert not re.search(r'(src|href)="(?!#|data:)', html.replace('href="https://', 'href="#'))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "name": st.sampled_from(
                    [TRAIN_LOSS, TRAIN_LR, VAL_MAP50, ATTEMPT_START, ATTEMPT_INTERRUPTED, "x" * 300]
                ),
                "step": st.one_of(st.integers(-5, 10**12), st.floats(allow_nan=True), st.text(max_size=3)),
                "value": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none(), st.just(1e300)),
                "attempt": st.one_of(st.integers(-3, 10**9), st.none(), st.booleans()),
                "wall": st.one_of(st.floats(allow_nan=True), st.none()),
                "max_iter": st.one_of(st.integers(-1, 10**15), st.none()),
            },
        ),
        max_size=60,
    )
)
def test_any_metrics_file_renders_a_bounded_page(lines: list[dict[str, Any]]) -> None:
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    curves = parse_metrics(data)
    html = render_run_page(RunPage(report=report(status="RUNNING"), curves=curves, generated_at="now"))
    assert html.startswith("<!DOCTYPE html>") and len(html) < MAX_PAGE_BYTES
    assert "nan" not in re.sub(r"<[^>]*class=\"note\"[^>]*>.*?</", "", html).split("<style>")[0].lower()


def test_ticks_cover_extreme_ranges() -> None:
    assert nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
    assert nice_ticks(-1e308, 1e308)  # no overflow
    assert nice_ticks(1e-300, 2e-300)


def test_the_batch_page_bounds_its_lists() -> None:
    summary = {
        "batch": "line-42",
        "images": 10_000,
        "images_with_defects": 1,
        "unreadable_images": 5_000,
        "unreadable": [f"bad-{i}.jpg" for i in range(5_000)],
        "detections_per_class": {"rail_crack": 3},
        "model": {"uri": "s3://drop/m.tar.gz", "source": "promoted", "lineage": {"run_id": "rail-0123"}},
    }
    html = render_batch_page(
        BatchPage(summary=summary, generated_at="now", model_report="../../runs/rail-0123/report.html")
    )
    assert html.count("<li") == 100 and "4,900 more" in html
    assert 'href="../../runs/rail-0123/report.html"' in html


def _tuning_report(objectives: list[float | None]) -> dict[str, Any]:
    trials = [
        {
            "number": i + 1,
            "job_name": f"spotline-tune-1a2b3c4d-{i + 1:03d}-0a1b2c3d",
            "status": "COMPLETED" if o is not None else "LOST_TO_SPOT",
            "objective": o,
            "hyperparameters": {"solver.base_lr": f"0.00{i + 1}", "model.width": "<b>8</b>"},
            "billable_s": 10 * (i + 1),
            "training_s": 30 * (i + 1),
        }
        for i, o in enumerate(objectives)
    ]
    best = trials[1]
    return report(
        kind="tuning",
        attempts=[],
        trials=trials,
        savings={
            "training_s": 90,
            "billable_s": 30,
            "estimated_cost_usd": 0.006,
            "on_demand_usd": 0.018,
            "savings_usd": 0.012,
            "savings_pct": 66.7,
            "attempts": [{"attempt": t["number"], "estimated_cost_usd": 0.001 * t["number"]} for t in trials],
        },
        results={
            "tuning": {
                "objective": {"metric": "val/mAP50", "goal": "maximize"},
                "best_trial": {k: best[k] for k in ("job_name", "objective", "hyperparameters")},
                "shortfall": "1 of 3 trial(s) were lost to Spot capacity and not replaced",
            }
        },
    )


def test_a_tuning_runs_page_lists_every_trial_its_objective_curve_and_the_best() -> None:
    html = render_run_page(
        RunPage(report=_tuning_report([0.4, 0.7, None]), curves=parse_metrics(b""), generated_at="now")
    )
    for n in (1, 2, 3):
        assert f"spotline-tune-1a2b3c4d-{n:03d}-0a1b2c3d" in html
    assert (
        'data-field="best_trial"' in html
        and "spotline-tune-1a2b3c4d-002-0a1b2c3d</span>, val/mAP50 0.7" in html
    )
    assert 'data-chart="val/mAP50 over trials"' in html
    assert "lost to Spot capacity and not replaced" in html
    assert "&lt;b&gt;8&lt;/b&gt;" in html and "<b>8</b>" not in html  # what the tuner chose is escaped
    assert "$0.0030" in html  # trial 3's own cost, in its row
    assert "Training curves" not in html  # a tuning run has no run-level curves: each trial has its own


def test_a_tuning_run_without_trials_yet_says_so() -> None:
    html = render_run_page(
        RunPage(report=report(kind="tuning", trials=[]), curves=parse_metrics(b""), generated_at="now")
    )
    assert "No trial has ended yet." in html


def test_the_attempts_timeline_starts_at_an_iso_utc_time_with_z() -> None:
    attempts = [
        {**a, "launched_at": start, "ended_at": end}
        for a, (start, end) in zip(
            report()["attempts"],
            [("2026-12-02T03:29:42.781Z", "2026-12-02T03:29:47.882Z"), ("2026-12-02T03:29:48.127Z", None)],
            strict=True,
        )
    ]
    html = render_run_page(
        RunPage(report=report(attempts=attempts), curves=parse_metrics(b""), generated_at="now")
    )
    assert ">2026-12-02T03:29:42.781Z</text>" in html
    assert "+00:00" not in html
