"""``spotline report RUN``: the run's training curves over all its attempts, and its savings, as a PNG.

Curves come from the jobs' logs in CloudWatch Logs (``/aws/sagemaker/TrainingJobs``, the lines the
MetricDefinitions read), so the same code draws a local run and a deployed one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spotline.metric_names import TRAIN_LOSS, VAL_MAP50

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
_METRIC = re.compile(r"#metric (\S+)=([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?) step=(\d+)")
_RESUME = re.compile(r"resuming from \S+ \(iteration (\d+)\)")


@dataclass
class AttemptCurves:
    job_name: str
    points: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    resumed_at: int | None = None

    def add_line(self, line: str) -> None:
        match = _METRIC.search(line)
        if match:
            self.points.setdefault(match.group(1), []).append((int(match.group(3)), float(match.group(2))))
            return
        resumed = _RESUME.search(line)
        if resumed and self.resumed_at is None:
            self.resumed_at = int(resumed.group(1))


def job_log_lines(logs: Any, job_name: str) -> list[str]:
    """Every line of the job's log streams, oldest first."""
    lines: list[str] = []
    try:
        streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{job_name}/")
    except logs.exceptions.ResourceNotFoundException:
        return lines
    for stream in streams.get("logStreams", []):
        token = None
        while True:
            kwargs: dict[str, Any] = {
                "logGroupName": LOG_GROUP,
                "logStreamName": stream["logStreamName"],
                "startFromHead": True,
            }
            if token:
                kwargs["nextToken"] = token
            page = logs.get_log_events(**kwargs)
            lines.extend(e["message"] for e in page.get("events", []))
            if not page.get("events") or page.get("nextForwardToken") == token:
                break
            token = page.get("nextForwardToken")
    return lines


def attempt_curves(logs: Any, job_names: Iterable[str]) -> list[AttemptCurves]:
    curves = []
    for name in job_names:
        attempt = AttemptCurves(name)
        for line in job_log_lines(logs, name):
            attempt.add_line(line)
        curves.append(attempt)
    return curves


def plot_run(
    path: Path,
    *,
    title: str,
    curves: Sequence[AttemptCurves],
    savings_line: str,
    interrupted_at: Sequence[int] = (),
) -> Path:
    """Loss per attempt (a resumed attempt continues where the last checkpoint was) and val mAP@0.5."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, map_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, attempt in enumerate(curves, start=1):
        loss = attempt.points.get(TRAIN_LOSS, [])
        if loss:
            label = f"attempt {i}" + (f" (resumed at {attempt.resumed_at})" if attempt.resumed_at else "")
            loss_ax.plot([s for s, _ in loss], [v for _, v in loss], marker=".", label=label)
        val = attempt.points.get(VAL_MAP50, [])
        if val:
            map_ax.plot([s for s, _ in val], [v for _, v in val], marker="o", label=f"attempt {i}")
    for step in interrupted_at:
        loss_ax.axvline(step, color="red", linestyle="--", linewidth=1)
        loss_ax.annotate(
            "Spot interruption",
            (step, 1),
            xycoords=("data", "axes fraction"),
            color="red",
            fontsize=8,
            ha="right",
            va="top",
            rotation=90,
        )
    loss_ax.set(title="training loss", xlabel="iteration", ylabel="loss")
    map_ax.set(title="validation mAP@0.5", xlabel="iteration", ylabel="mAP@0.5", ylim=(0, 1))
    for ax in (loss_ax, map_ax):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(f"{title}\n{savings_line}".replace("$", r"\$"), fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
