"""The NumPy example image (examples/numpy_trainer) on the /opt/ml contract, run as SageMaker runs it.

Its own config validates under spotline's schema, its metric lines are read by that config's
regexes, a SIGTERM mid-epoch saves and exits 143, and the resumed run ends with exactly the model
an uninterrupted run makes; the failure file tells the user's errors apart.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spotline.config import ValidationContext, parse_run_config, run_metric_names

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "numpy_trainer"
ALLOWED = ("arn:aws:ecr:us-east-1:123456789012:repository/rail-*",)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("geometry")
    done = subprocess.run([sys.executable, str(EXAMPLE / "train.py"), "synth", str(out)], check=False)
    assert done.returncode == 0
    return out


def tree(
    base: Path, data: Path, hyperparameters: dict[str, str], channels: tuple[str, ...] = ("train", "valid")
) -> Path:
    for name in channels:
        shutil.copytree(data / name, base / "input" / "data" / name)
    (base / "input" / "config").mkdir(parents=True, exist_ok=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    return base


def start(base: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "PYTHONPATH": str(ROOT / "container")}
    return subprocess.Popen(
        [sys.executable, str(EXAMPLE / "train.py"), "train"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(base: Path) -> tuple[int, str, str]:
    proc = start(base)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def model(base: Path) -> dict[str, np.ndarray]:
    with np.load(base / "model" / "model.npz") as saved:
        return {k: saved[k].copy() for k in saved.files}


def test_its_config_validates_and_its_regexes_read_its_metric_lines(tmp_path: Path, data: Path) -> None:
    config = parse_run_config(
        (EXAMPLE / "rail-geometry.yaml").read_bytes(),
        ValidationContext(drop_bucket="b", stack_image="x", allowed_images=ALLOWED),
    )
    assert config.job.image is not None and config.job.checkpoints
    assert run_metric_names(config) == ("train/loss", "valid/accuracy")
    code, out, err = run(tree(tmp_path, data, {"epochs": "2"}))
    assert code == 0, err[-2000:]
    read: dict[str, list[float]] = {}
    for line in out.splitlines():
        for name, regex in config.job.metrics.items():
            match = re.search(regex, line)
            if match:
                read.setdefault(name, []).append(float(match.group(1)))
    assert set(read) == {"train/loss", "valid/accuracy"}
    assert len(read["valid/accuracy"]) == 2  # one per epoch
    assert read["valid/accuracy"][-1] >= 0.8  # the gate of its config passes on this data
    assert json.loads((tmp_path / "model" / "metrics.json").read_text())["valid/accuracy"] == pytest.approx(
        read["valid/accuracy"][-1], abs=1e-5
    )


def test_sigterm_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path: Path, data: Path) -> None:
    settings = {"epochs": "3", "checkpoint_every": "4", "step_delay_s": "0.02"}
    code, _, err = run(tree(tmp_path / "reference", data, settings))
    assert code == 0, err[-2000:]

    spot = tree(tmp_path / "spot", data, settings)
    proc = start(spot)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("#metric train/loss=") and line.strip().endswith(" step=7"):
            proc.send_signal(signal.SIGTERM)
            break
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert not (spot / "output" / "failure").exists() and not (spot / "model").exists()
    stopped = int(re.findall(r"stopped at step (\d+)", err)[0])
    assert (spot / "checkpoints" / f"checkpoint_{stopped:08d}.npz").is_file()

    code, _, err = run(spot)
    assert code == 0, err[-2000:]
    assert re.search(
        rf"resuming from checkpoint checkpoint_{stopped:08d}\.npz \(epoch 0, batch {stopped}", err
    )
    resumed, reference = model(spot), model(tmp_path / "reference")
    assert resumed.keys() == reference.keys()
    for name in reference:
        np.testing.assert_array_equal(resumed[name], reference[name])


def test_a_corrupt_newest_checkpoint_is_skipped(tmp_path: Path, data: Path) -> None:
    base = tree(tmp_path, data, {"epochs": "1", "checkpoint_every": "3"})
    assert run(base)[0] == 0
    newest = sorted((base / "checkpoints").glob("checkpoint_*.npz"))[-1]
    newest.write_bytes(newest.read_bytes()[:40])
    (base / "input" / "config" / "hyperparameters.json").write_text(
        '{"epochs": "2", "checkpoint_every": "3"}'
    )
    code, _, err = run(base)
    assert code == 0, err[-2000:]
    assert f"checkpoint {newest.name}: unreadable" in err and "resuming from checkpoint" in err


@pytest.mark.parametrize(
    ("hyperparameters", "channels", "failure"),
    [
        ({}, ("valid",), "UserError: channel 'train' has no geometry.csv"),
        (
            {"learning_rate": "fast"},
            ("train",),
            "UserError: hyperparameter learning_rate='fast' is not a float",
        ),
        ({"learning_rate": "nan"}, ("train",), "UserError: learning_rate must be a positive number, not nan"),
        ({"epoch": "3"}, ("train",), "UserError: unknown hyperparameters: epoch"),
    ],
)
def test_the_users_errors_are_user_errors(
    tmp_path: Path, data: Path, hyperparameters: dict[str, str], channels: tuple[str, ...], failure: str
) -> None:
    code, _, err = run(tree(tmp_path, data, hyperparameters, channels))
    assert code == 1, err[-2000:]
    assert (tmp_path / "output" / "failure").read_text().startswith(failure)
