"""Tiny synthetic datasets and helpers that run the container's real entry point on a temporary /opt/ml."""

from __future__ import annotations

import shutil
import socket
import sys
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from spotline_container.sagemaker_tree import container_env, make_tree
from spotline_container.synthetic import generate_dataset
from tests.support.processes import run_watched


def tiny_config(max_iter: int = 30, **sections: str) -> str:
    """A config small enough to train in seconds on one CPU core (64 px, width 8)."""
    parts = {
        "job": "{channels: {train: datasets/rail/train, val: datasets/rail/val}}",
        "model": "{depth: 1, width: 8, head_width: 16}",
        "input": "{size: 64}",
        "dataloader": "{num_workers: 0}",
        "solver": f"{{batch_size: 8, base_lr: 0.005, max_iter: {max_iter}, warmup_iters: 3, log_period: 1}}",
        "checkpoint": "{period_iters: 10, keep: 3}",
    }
    parts.update(sections)
    return "".join(f"{k}: {v}\n" for k, v in parts.items())


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    base: Path

    @property
    def failure(self) -> str | None:
        path = self.base / "output" / "failure"
        return path.read_text() if path.exists() else None


def run_container(base: Path, env: Mapping[str, str] | None = None) -> Run:
    proc = run_watched(
        [sys.executable, "-m", "spotline_container", "train"],
        env=container_env(base, {"OMP_NUM_THREADS": "1", **(env or {})}),
    )
    return Run(proc.returncode, proc.stdout, proc.stderr, base)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def model_channel(trained: Run, where: Path) -> Path:
    where.mkdir(parents=True)
    with tarfile.open(where / "model.tar.gz", "w:gz") as tar:
        for name in ("model.pt", "config.yaml", "metrics.json"):
            tar.add(trained.base / "model" / name, arcname=name)
    return where


def images_channel(rail_data: dict[str, Path], where: Path) -> Path:
    # As SageMaker lays out a ManifestFile channel: the listed keys at their relative paths.
    shutil.copytree(rail_data["unlabelled"], where / "line-7")
    shutil.copy(rail_data["unlabelled"] / "track_00000.jpg", where / "top.jpg")
    (where / "line-7" / "broken.jpg").write_bytes(b"not a jpeg")
    return where


@pytest.fixture(scope="session")
def rail_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return generate_dataset(tmp_path_factory.mktemp("rail"), 24, 8, 5, seed=1, image_size=64)


@pytest.fixture
def channels(rail_data: dict[str, Path]) -> dict[str, Path]:
    return {"train": rail_data["train"], "val": rail_data["val"]}


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, rail_data: dict[str, Path]) -> Run:
    """One short training run, shared by the tests that look at its outputs."""
    base = make_tree(
        tmp_path_factory.mktemp("trained"),
        config_yaml=tiny_config(max_iter=40),
        hyperparameters={"solver.max_iter": "30"},
        channels={"train": rail_data["train"], "val": rail_data["val"]},
    )
    return run_container(base)
