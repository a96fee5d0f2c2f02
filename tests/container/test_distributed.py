"""Two processes on one host, DDP over gloo on CPU: both train, only rank 0 writes."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from spotline_container.sagemaker_tree import make_tree
from tests.container.conftest import Run, free_port, images_channel, model_channel, run_container, tiny_config


def test_two_process_ddp_trains_and_only_rank_0_writes(tmp_path: Path, channels: dict[str, Path]) -> None:
    base = make_tree(tmp_path, config_yaml=tiny_config(max_iter=12), channels=channels)
    run = run_container(base, {"SPOTLINE_NPROC_PER_HOST": "2", "SPOTLINE_MASTER_PORT": str(free_port())})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "[rank 1] spotline_container.trainer: training steps 0..12" in run.stderr
    writes = [line for line in run.stderr.splitlines() if "written" in line]
    assert writes
    assert all("[rank 0]" in line for line in writes)
    assert run.stdout.count("#metric train/loss=") == 12  # rank 0 alone prints metrics
    payload = torch.load(base / "model" / "model.pt", weights_only=True)
    assert payload["kwargs"]["width"] == 8
    assert [p.name for p in sorted((base / "checkpoints").glob("model_*.pt"))] == [
        "model_00000010.pt",
        "model_00000012.pt",
    ]


def test_two_process_inference_merges_every_shard(
    tmp_path: Path, trained: Run, rail_data: dict[str, Path]
) -> None:
    base = make_tree(
        tmp_path / "ml",
        hyperparameters={"mode": "inference", "inference.shard_size": "2"},
        channels={
            "model": model_channel(trained, tmp_path / "model-src"),
            "images": images_channel(rail_data, tmp_path / "images-src"),
        },
    )
    run = run_container(base, {"SPOTLINE_NPROC_PER_HOST": "2", "SPOTLINE_MASTER_PORT": str(free_port())})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "[rank 1] spotline_container.inference: shard 1 " in run.stderr
    lines = (base / "model" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 7
    assert json.loads((base / "model" / "summary.json").read_text())["images"] == 7
