"""Inference mode: the model archive and a folder of images in, documented JSON out, resumed by shard."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from spotline_container.sagemaker_tree import make_tree
from tests.container.conftest import Run, images_channel, model_channel, run_container


def test_inference_writes_predictions_and_resumes_by_shard(
    tmp_path: Path, trained: Run, rail_data: dict[str, Path]
) -> None:
    assert trained.returncode == 0
    base = make_tree(
        tmp_path / "ml",
        hyperparameters={
            "mode": "inference",
            "inference.shard_size": "2",
            "inference.score_threshold": "0.01",
        },
        channels={
            "model": model_channel(trained, tmp_path / "model-src"),
            "images": images_channel(rail_data, tmp_path / "images-src"),
        },
    )
    run = run_container(base)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(line) for line in (base / "model" / "predictions.jsonl").read_text().splitlines()]
    keys = [line["image"] for line in lines]
    assert keys == sorted(keys)
    assert len(keys) == 7
    assert "top.jpg" in keys
    assert "line-7/track_00004.jpg" in keys
    broken = next(line for line in lines if line["image"] == "line-7/broken.jpg")
    assert "error" in broken
    good = next(line for line in lines if line["image"] == "top.jpg")
    assert (good["width"], good["height"]) == (64, 64)
    detections = [det for line in lines for det in line.get("detections", [])]
    assert detections  # the bounds below are checked on something
    for det in detections:
        assert det["class"] in ("missing_fastener", "rail_crack", "surface_squat")
        assert 0.01 <= det["score"] <= 1
        x1, y1, x2, y2 = det["box"]
        assert 0 <= x1 <= x2 <= 64
        assert 0 <= y1 <= y2 <= 64
    summary = json.loads((base / "model" / "summary.json").read_text())
    assert summary["images"] == 7
    assert summary["unreadable_images"] == 1
    assert summary["shards"] == 4
    assert set(summary["detections_per_class"]) == {"missing_fastener", "rail_crack", "surface_squat"}
    assert sum(summary["detections_per_class"].values()) == sum(len(x.get("detections", [])) for x in lines)
    assert summary["images_with_defects"] == sum(bool(x.get("detections")) for x in lines)

    # A relaunch after an interruption: shard 2 never finished, the others are kept as they are.
    shards = base / "checkpoints" / "inference"
    (shards / "shard-00002.done").unlink()
    kept = {
        p.name: p.stat().st_mtime_ns for p in shards.glob("shard-*.jsonl") if p.name != "shard-00002.jsonl"
    }
    (base / "model" / "predictions.jsonl").unlink()
    again = run_container(base)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "3 shard(s) were already done" in again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in shards.glob("shard-*.jsonl") if p.name in kept} == kept
    assert (base / "model" / "predictions.jsonl").read_text().count("\n") == 7


def test_inference_without_images_is_a_user_error(tmp_path: Path, trained: Run) -> None:
    base = make_tree(
        tmp_path / "ml",
        hyperparameters={"mode": "inference"},
        channels={"model": model_channel(trained, tmp_path / "model-src")},
    )
    run = run_container(base)
    assert run.returncode == 1
    assert run.failure is not None
    assert run.failure.startswith("UserError: missing channel 'images'")


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        (lambda p: p["kwargs"].update(width=0), "width is 0, expected a whole number from 4 to 256"),
        (lambda p: p.update(classes="rail_crack"), "classes is 'rail_crack', expected a list of names"),
    ],
    ids=["width-0", "classes-a-string"],
)
def test_an_odd_model_file_is_a_user_error_naming_it(
    tmp_path: Path,
    trained: Run,
    rail_data: dict[str, Path],
    tamper: Callable[[dict[str, Any]], object],
    why: str,
) -> None:
    assert trained.returncode == 0
    source = tmp_path / "model-src"
    source.mkdir()
    for name in ("config.yaml", "metrics.json"):
        shutil.copy(trained.base / "model" / name, source / name)
    payload = torch.load(trained.base / "model" / "model.pt", weights_only=True)
    tamper(payload)
    torch.save(payload, source / "model.pt")
    base = make_tree(
        tmp_path / "ml",
        hyperparameters={"mode": "inference"},
        channels={"model": source, "images": images_channel(rail_data, tmp_path / "images-src")},
    )
    run = run_container(base)
    assert run.returncode == 1, run.stderr[-3000:]
    assert run.failure == f"UserError: cannot load model.pt: ValueError: {why}"
