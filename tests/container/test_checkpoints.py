"""Spot safety: atomic checkpoints, fallback past a corrupt or misfit one, SIGTERM then resume ==
uninterrupted, and a bad checkpoint with nothing to fall back to is the user's error, naming the file."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from spotline_container.checkpoint import CheckpointStore
from spotline_container.sagemaker_tree import make_tree, start
from tests.container.conftest import Run, run_container, tiny_config


def _state(i: int) -> dict[str, object]:
    return {"model": {"w": torch.full((3,), float(i))}, "optimizer": {}, "iteration": i}


def test_store_keeps_the_last_k_and_falls_back_past_a_truncated_one(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, keep=2)
    for i in (10, 20, 30):
        store.save(_state(i), i)
    assert [i for i, _ in store.checkpoints()] == [20, 30]
    assert (tmp_path / "latest").read_text().strip() == "model_00000030.pt"
    newest = tmp_path / "model_00000030.pt"
    newest.write_bytes(newest.read_bytes()[:50])  # truncated, as by a kill during an S3 sync
    (tmp_path / ".tmp-model_00000040.pt.123").write_bytes(b"half")  # a write that never finished
    state = store.load_latest()
    assert state is not None
    assert state["iteration"] == 20
    (tmp_path / "latest").write_text("garbage")
    assert store.load_latest()["iteration"] == 20  # type: ignore[index]
    store.clean_temporaries()
    assert not list(tmp_path.glob(".tmp-*"))


def test_corrupt_latest_checkpoint_is_survived(tmp_path: Path, channels: dict[str, Path]) -> None:
    base = make_tree(tmp_path, config_yaml=tiny_config(max_iter=20), channels=channels)
    first = run_container(base)
    assert first.returncode == 0, first.stderr[-2000:]
    latest = base / "checkpoints" / "model_00000020.pt"
    latest.write_bytes(b"\x00" * 100)
    make_tree(base, config_yaml=tiny_config(max_iter=25), channels=channels)
    second = run_container(base)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "checkpoint model_00000020.pt: unreadable" in second.stderr
    assert "resuming from model_00000010.pt (iteration 10)" in second.stderr
    assert "training steps 10..25" in second.stderr


def _weights(run: Run) -> dict[str, torch.Tensor]:
    return torch.load(run.base / "model" / "model.pt", weights_only=True)["model"]  # type: ignore[no-any-return]


def test_sigterm_then_resume_equals_an_uninterrupted_run(tmp_path: Path, channels: dict[str, Path]) -> None:
    config = tiny_config(
        max_iter=24, dataloader="{num_workers: 1}", checkpoint="{period_iters: 1000, keep: 2}"
    )
    reference = run_container(make_tree(tmp_path / "ref", config_yaml=config, channels=channels))
    assert reference.returncode == 0, reference.stderr[-2000:]

    base = make_tree(tmp_path / "spot", config_yaml=config, channels=channels)
    proc = start(base, {"OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    for line in proc.stdout:
        if re.match(r"#metric train/loss=\S+ step=8$", line.strip()):
            proc.send_signal(signal.SIGTERM)
            break
    _, stderr = proc.communicate(timeout=120)  # SageMaker's stop budget: SIGKILL follows it
    assert proc.returncode == 143, stderr[-2000:]
    assert not (base / "output" / "failure").exists()
    assert not (base / "model" / "model.pt").exists()
    stopped_at = int(re.findall(r"stopped at iteration (\d+)", stderr)[0])
    assert 8 <= stopped_at < 24
    assert (base / "checkpoints" / f"model_{stopped_at:08d}.pt").exists()
    assert not list((base / "checkpoints").glob(".tmp-*"))

    resumed = run_container(base)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"training steps {stopped_at}..24" in resumed.stderr
    expected, got = _weights(reference), _weights(resumed)
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-5, msg=name)


class _Opaque:
    """Not a type safe unpickling accepts: a checkpoint holding it must not be loaded."""


def _tamper(path: Path, how: str) -> None:
    """Rewrite the checkpoint in ``path`` as an odd or hostile writer would."""
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:64])
        return
    state = torch.load(path, weights_only=True)
    if how == "empty-model":
        state["model"] = {}
    elif how == "wrong-shapes":
        state["model"] = {k: torch.zeros(3, 3) for k in state["model"]}
    elif how == "iteration-ten":
        state["iteration"] = "ten"
    elif how == "not-a-mapping":
        state = [state["model"]]
    elif how == "odd-rng":
        state["rng"] = {"torch": "not a tensor"}
    elif how == "unsafe-pickle":
        state["data"] = _Opaque()
    torch.save(state, path)


def _resume_tree(tmp_path: Path, trained: Run, channels: dict[str, Path], *, keep: tuple[int, ...]) -> Path:
    """A run relaunched with the trained run's checkpoints of iterations ``keep`` (10, 20, 30)."""
    assert trained.returncode == 0, trained.stderr[-2000:]
    base = make_tree(tmp_path / "ml", config_yaml=tiny_config(max_iter=35), channels=channels)
    (base / "checkpoints").mkdir()
    for iteration in keep:
        name = f"model_{iteration:08d}.pt"
        shutil.copy(trained.base / "checkpoints" / name, base / "checkpoints" / name)
    (base / "checkpoints" / "latest").write_text(f"model_{max(keep):08d}.pt\n")
    return base


@pytest.mark.parametrize("how", ["empty-model", "wrong-shapes", "iteration-ten"])
def test_a_checkpoint_that_does_not_fit_falls_back_to_the_newest_that_does(
    tmp_path: Path, trained: Run, channels: dict[str, Path], how: str
) -> None:
    base = _resume_tree(tmp_path, trained, channels, keep=(10, 20, 30))
    _tamper(base / "checkpoints" / "model_00000030.pt", how)

    run = run_container(base)

    assert run.returncode == 0, run.stderr[-3000:]
    assert "checkpoint model_00000030.pt: " in run.stderr and "trying an older one" in run.stderr
    assert "resuming from model_00000020.pt (iteration 20)" in run.stderr
    assert "training steps 20..35" in run.stderr
    assert (base / "model" / "model.pt").exists()


@pytest.mark.parametrize(
    ("how", "why"),
    [
        ("iteration-ten", "iteration is 'ten', not a whole number"),
        ("not-a-mapping", "holds a list, not a checkpoint mapping"),
        ("unsafe-pickle", "unreadable (UnpicklingError"),
        ("odd-rng", "does not fit this model (TypeError"),
    ],
)
def test_a_bad_checkpoint_with_no_good_one_is_a_user_error_naming_the_file(
    tmp_path: Path, trained: Run, channels: dict[str, Path], how: str, why: str
) -> None:
    base = _resume_tree(tmp_path, trained, channels, keep=(30,))
    _tamper(base / "checkpoints" / "model_00000030.pt", how)

    run = run_container(base)

    assert run.returncode == 1, run.stderr[-3000:]
    assert run.failure is not None
    assert run.failure.startswith("UserError: no checkpoint in "), run.failure
    assert f"model_00000030.pt: {why}" in run.failure, run.failure
    assert not (base / "model" / "model.pt").exists()
