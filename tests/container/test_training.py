"""Training through the real runner on a temporary /opt/ml tree: model out, loss down, metric lines."""

from __future__ import annotations

import json
import re

import pytest
import torch

from spotline.metric_names import ALL, metric_regex
from tests.container.conftest import Run


def _losses(stdout: str) -> list[float]:
    return [float(v) for v in re.findall(metric_regex("train/loss"), stdout)]


def test_training_writes_the_model(trained: Run) -> None:
    assert trained.returncode == 0, trained.stderr[-3000:]
    model_dir = trained.base / "model"
    payload = torch.load(model_dir / "model.pt", weights_only=True)
    assert payload["classes"] == ["missing_fastener", "rail_crack", "surface_squat"]
    assert payload["input_size"] == 64
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["iteration"] == 30  # the hyperparameter overrode solver.max_iter: 40
    assert 0.0 <= metrics["mAP50"] <= 1.0
    assert "solver:" in (model_dir / "config.yaml").read_text()
    assert trained.failure is None


def test_loss_falls(trained: Run) -> None:
    losses = _losses(trained.stdout)
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_metric_lines_match_the_control_planes_regexes(trained: Run) -> None:
    for name in ("train/loss", "train/lr", "train/images_per_s", "val/mAP50", "val/mAP"):
        assert name in ALL
        assert re.search(metric_regex(name), trained.stdout), name


def test_the_metrics_file_holds_the_same_points_as_the_metric_lines(trained: Run) -> None:
    from spotline.metric_names import METRICS_FILE
    from spotline.reports.metrics import parse_metrics

    curves = parse_metrics((trained.base / "checkpoints" / METRICS_FILE).read_bytes())
    (loss,) = curves.of("train/loss")
    assert [v for _, v in loss.points] == pytest.approx(_losses(trained.stdout), rel=1e-5)
    assert curves.starts[0].step == 0 and curves.max_iter == 30
    assert curves.of("val/mAP50") and not curves.interruptions
