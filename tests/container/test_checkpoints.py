"""Spot safety: atomic checkpoints, fallback past a corrupt one, SIGTERM then resume == uninterrupted."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

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
    assert "model_00000020.pt is unreadable" in second.stderr
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
    _, stderr = proc.communicate(timeout=60)
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
