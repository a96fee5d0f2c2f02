"""A rail-geometry defect classifier in plain NumPy: an image of another shape, Spot-safe by the toolkit.

Nothing of spotline's detector: an epoch loop of logistic regression over a CSV of track-geometry
measurements (gauge, cant, twist, ...; last column 1 = defect), settings from SageMaker
hyperparameters. What makes it Spot-safe under spotline comes from ``spotline_toolkit``:

* a checkpoint after every ``checkpoint_every`` steps and on SIGTERM (``.npz``, written atomically,
  ``latest`` pointer, a truncated file skipped), resumed from ``/opt/ml/checkpoints`` on start: the
  shuffle of epoch ``e`` is a function of ``seed`` and ``e``, so a resumed run replays the batches
  an uninterrupted run would have seen;
* SIGTERM finishes the step, saves, exits 143;
* ``#metric train/loss=... step=N`` and ``#metric valid/accuracy=... step=N`` lines, read by the
  regexes of its config's ``job.metrics``;
* ``UserError`` (a missing channel, a bad hyperparameter, bad data) vs ``PlatformError`` in
  ``/opt/ml/output/failure``.

Usage: ``python train.py`` (what the image runs) or ``python train.py synth OUT_DIR`` (a dataset).
"""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spotline_toolkit.checkpoints import CheckpointDir, CheckpointUnusable, atomic_write_bytes
from spotline_toolkit.failures import Interrupted, UserError, run_job
from spotline_toolkit.metrics import metric_line
from spotline_toolkit.paths import JobPaths
from spotline_toolkit.stopping import StopRequest

log = logging.getLogger("numpy_trainer")
FEATURES = ("gauge_mm", "cant_mm", "twist_mm_per_m", "alignment_mm", "top_mm", "speed_kmh")
DATA_FILE = "geometry.csv"


@dataclass(frozen=True)
class Settings:
    """The hyperparameters this image reads (SageMaker hands them over as text)."""

    epochs: int = 8
    batch_size: int = 32
    learning_rate: float = 0.5
    l2: float = 1e-3
    seed: int = 7
    checkpoint_every: int = 5
    step_delay_s: float = 0.0  # stands in for a long GPU step in demos and tests

    @classmethod
    def from_hyperparameters(cls, values: dict[str, str]) -> Settings:
        known = cls.__dataclass_fields__
        unknown = sorted(k for k in values if k not in known and not k.startswith(("_", "sagemaker_")))
        if unknown:
            raise UserError(f"unknown hyperparameters: {', '.join(unknown)} (known: {', '.join(known)})")
        parsed: dict[str, Any] = {}
        for name, text in values.items():
            if name not in known:
                continue
            kind = int if known[name].type in ("int", int) else float
            try:
                parsed[name] = kind(text)
            except ValueError:
                raise UserError(f"hyperparameter {name}={text!r} is not a {kind.__name__}") from None
        settings = cls(**parsed)
        if min(settings.epochs, settings.batch_size, settings.checkpoint_every) < 1:
            raise UserError("epochs, batch_size and checkpoint_every must be at least 1")
        if not (np.isfinite(settings.learning_rate) and settings.learning_rate > 0):
            raise UserError(f"learning_rate must be a positive number, not {settings.learning_rate}")
        return settings


def read_channel(paths: JobPaths, name: str) -> tuple[np.ndarray, np.ndarray]:
    path = paths.channel(name) / DATA_FILE
    if not path.is_file():
        raise UserError(f"channel '{name}' has no {DATA_FILE}")
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    except ValueError as e:
        raise UserError(f"channel '{name}': {DATA_FILE} is not numeric CSV ({e})") from None
    if table.shape[1] != len(FEATURES) + 1 or len(table) == 0 or not np.isfinite(table).all():
        raise UserError(
            f"channel '{name}': {DATA_FILE} needs {len(FEATURES) + 1} finite columns and at least one row"
        )
    return table[:, :-1], table[:, -1]


@dataclass
class State:
    weights: np.ndarray
    bias: float
    epoch: int  # the epoch in progress
    batch: int  # batches of it already done
    step: int  # optimizer steps so far

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, weights=self.weights, meta=np.array([self.bias, self.epoch, self.batch, self.step]))
        return buffer.getvalue()

    @classmethod
    def from_file(cls, path: Path) -> State:
        with np.load(path, allow_pickle=False) as data:
            if "weights" not in data or "meta" not in data or data["meta"].shape != (4,):
                raise CheckpointUnusable("not a checkpoint of this trainer")
            bias, epoch, batch, step = data["meta"].tolist()
            return cls(data["weights"].copy(), float(bias), int(epoch), int(batch), int(step))


def _loss_and_grad(state: State, x: np.ndarray, y: np.ndarray, l2: float) -> tuple[float, np.ndarray, float]:
    p = 1.0 / (1.0 + np.exp(-(x @ state.weights + state.bias)))
    eps = 1e-12
    loss = float(
        -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)) + l2 * state.weights @ state.weights
    )
    error = (p - y) / len(y)
    return loss, x.T @ error + 2 * l2 * state.weights, float(error.sum())


def accuracy(state: State, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(((x @ state.weights + state.bias) > 0) == (y > 0.5)))


def train(paths: JobPaths, stop: StopRequest) -> None:
    settings = Settings.from_hyperparameters(paths.hyperparameters())
    x, y = read_channel(paths, "train")
    has_valid = (paths.channel("valid") / DATA_FILE).is_file()
    vx, vy = read_channel(paths, "valid") if has_valid else (x, y)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    x, vx = (x - mean) / std, (vx - mean) / std

    checkpoints = CheckpointDir(paths.checkpoints, keep=2, suffix=".npz")
    checkpoints.clean_temporaries()
    found = checkpoints.load_latest(State.from_file)
    if found is not None:
        path, state = found
        if state.weights.shape != (x.shape[1],):
            raise UserError(f"checkpoint {path.name} does not fit this data ({x.shape[1]} features)")
        log.info(
            "resuming from checkpoint %s (epoch %d, batch %d, step %d)",
            path.name,
            state.epoch,
            state.batch,
            state.step,
        )
    else:
        state = State(np.zeros(x.shape[1]), 0.0, 0, 0, 0)
        log.info("no checkpoint: starting from zero")

    batches = max(1, -(-len(x) // settings.batch_size))
    while state.epoch < settings.epochs:
        order = np.random.default_rng([settings.seed, state.epoch]).permutation(len(x))
        while state.batch < batches:
            rows = order[state.batch * settings.batch_size : (state.batch + 1) * settings.batch_size]
            loss, grad_w, grad_b = _loss_and_grad(state, x[rows], y[rows], settings.l2)
            state.weights = state.weights - settings.learning_rate * grad_w
            state.bias -= settings.learning_rate * grad_b
            state.batch += 1
            state.step += 1
            print(metric_line("train/loss", loss, state.step), flush=True)
            time.sleep(settings.step_delay_s)
            if stop.requested:
                checkpoints.save(state.step, lambda f: f.write(state.to_bytes()))
                raise Interrupted(f"stopped at step {state.step} (epoch {state.epoch}, batch {state.batch})")
            if state.step % settings.checkpoint_every == 0:
                checkpoints.save(state.step, lambda f: f.write(state.to_bytes()))
        state.epoch, state.batch = state.epoch + 1, 0
        print(metric_line("valid/accuracy", accuracy(state, vx, vy), state.step), flush=True)
    checkpoints.save(state.step, lambda f: f.write(state.to_bytes()))

    paths.model.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, weights=state.weights, bias=np.array(state.bias), mean=mean, std=std)
    atomic_write_bytes(paths.model / "model.npz", buffer.getvalue())
    result = {"step": state.step, "valid/accuracy": accuracy(state, vx, vy), "features": list(FEATURES)}
    atomic_write_bytes(paths.model / "metrics.json", json.dumps(result, indent=2).encode())
    log.info("done after %d steps: valid/accuracy %.4f", state.step, result["valid/accuracy"])


def synthesize(out: Path, rows: int = 400, seed: int = 0) -> None:
    """Track-geometry rows: a defect where gauge, twist and top deviate together, with noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES))) * [3.0, 8.0, 1.5, 4.0, 4.0, 30.0] + [1435, 0, 0, 0, 0, 120]
    score = (
        0.6 * (x[:, 0] - 1435) / 3
        + 1.2 * x[:, 2] / 1.5
        + 0.8 * x[:, 4] / 4
        + rng.normal(scale=0.5, size=rows)
    )
    y = (score > 1.0).astype(float)
    out.mkdir(parents=True, exist_ok=True)
    header = ",".join((*FEATURES, "defect"))
    np.savetxt(
        out / DATA_FILE, np.column_stack([x, y]), delimiter=",", header=header, comments="", fmt="%.4f"
    )


def main(argv: list[str]) -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if argv[:1] == ["synth"] and len(argv) == 2:
        synthesize(Path(argv[1]) / "train", seed=0)
        synthesize(Path(argv[1]) / "valid", rows=200, seed=1)
        return 0
    if argv not in ([], ["train"]):
        log.error("usage: train.py [train] | train.py synth OUT_DIR")
        return 2
    paths = JobPaths.from_env()
    stop = StopRequest().install()
    try:
        return run_job(lambda: train(paths, stop), paths.failure)
    finally:
        stop.uninstall()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
