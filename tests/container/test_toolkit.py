"""The container toolkit on its own: what any image gets from it, with the standard library alone."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spotline import metric_names
from spotline_toolkit.checkpoints import CheckpointDir, CheckpointUnusable, atomic_write_bytes
from spotline_toolkit.failures import (
    MAX_FAILURE_CHARS,
    Interrupted,
    UserError,
    run_job,
)
from spotline_toolkit.metrics import NAME, job_metrics, metric_line, metric_regex
from spotline_toolkit.paths import JobPaths
from spotline_toolkit.stopping import SIGTERM_EXIT_CODE

CONTAINER = Path(__file__).resolve().parents[2] / "container"


def _json(path: Path) -> dict[str, int]:
    data = json.loads(path.read_text())
    if "step" not in data:
        raise CheckpointUnusable("no step")
    return data  # type: ignore[no-any-return]


def test_checkpoints_keep_the_last_k_and_fall_back_past_bad_files(tmp_path: Path) -> None:
    files = CheckpointDir(tmp_path, keep=2, suffix=".json")
    for step in (10, 20, 30):
        files.save(step, lambda f, s=step: f.write(json.dumps({"step": s}).encode()))  # type: ignore[misc]
    assert [s for s, _ in files.checkpoints()] == [20, 30]
    assert (tmp_path / "latest").read_text().strip() == "checkpoint_00000030.json"
    (tmp_path / "checkpoint_00000030.json").write_bytes(b'{"st')  # truncated by a kill mid-sync
    found = files.load_latest(_json)
    assert found is not None and found[1] == {"step": 20}
    atomic_write_bytes(tmp_path / "checkpoint_00000040.json", b'{"other": 1}')  # readable, incomplete
    (tmp_path / "latest").write_text("../../etc/passwd")  # a pointer that names no checkpoint
    found = files.load_latest(_json)
    assert found is not None and found[0].name == "checkpoint_00000020.json"
    for _, path in files.checkpoints():
        path.write_bytes(b"")
    # checkpoints there, none usable: the user's to fix (a relaunch would fail the same way)
    with pytest.raises(UserError, match=r"no checkpoint in .* can be resumed from: checkpoint_00000040"):
        files.load_latest(_json)
    assert CheckpointDir(tmp_path / "absent").load_latest(_json) is None  # none yet: start from zero


def test_running_out_of_memory_while_loading_is_no_fault_of_the_file(tmp_path: Path) -> None:
    files = CheckpointDir(tmp_path, keep=2)
    files.save(1, lambda f: f.write(b"{}"))

    def load(path: Path) -> None:
        raise MemoryError

    with pytest.raises(MemoryError):
        files.load_latest(load)


WRITER = """
import json, sys
from pathlib import Path
from spotline_toolkit.checkpoints import CheckpointDir

files = CheckpointDir(Path(sys.argv[1]), keep=2, suffix=".json")
step = 0
while True:
    step += 1
    files.save(step, lambda f: f.write(json.dumps({"step": step, "pad": "x" * 200_000}).encode()))
    if step == 3:
        print("writing", flush=True)
"""


def test_a_writer_killed_at_any_instant_leaves_a_checkpoint_to_resume_from(tmp_path: Path) -> None:
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(CONTAINER)},
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
        proc.kill()  # SIGKILL: no handler, no cleanup, wherever the writer is
        proc.wait()
        found = CheckpointDir(tmp_path, keep=2, suffix=".json").load_latest(_json)
        assert found is not None and found[1]["step"] >= 3
        assert found[0].name == f"checkpoint_{found[1]['step']:08d}.json"
    CheckpointDir(tmp_path).clean_temporaries()
    assert not list(tmp_path.glob(".tmp-*"))


LOOP = """
import sys, time
from spotline_toolkit.stopping import StopRequest, SIGTERM_EXIT_CODE
stop = StopRequest().install()
print("ready", flush=True)
steps = 0
while not stop.requested:
    steps += 1
    time.sleep(0.01)
if sys.argv[1] == "hang":
    while True:
        time.sleep(1)
print(f"stopped after {steps} steps", flush=True)
sys.exit(SIGTERM_EXIT_CODE)
"""


@pytest.mark.parametrize("behaviour", ["stop", "hang"])
def test_sigterm_is_a_stop_request_with_a_watchdog(behaviour: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", LOOP, behaviour],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(CONTAINER), "SPOTLINE_STOP_GRACE_S": "0.5"},
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == SIGTERM_EXIT_CODE
    if behaviour == "stop":
        assert re.fullmatch(r"stopped after \d+ steps", stdout.strip())
    else:
        assert stdout == "" and "after the SIGTERM grace period" in stderr


def _raise(error: BaseException) -> None:
    raise error


@pytest.mark.parametrize(
    ("error", "status", "failure"),
    [
        (None, 0, None),
        (UserError("channel 'train' is empty"), 1, "UserError: channel 'train' is empty"),
        (KeyError("lr"), 1, "PlatformError: KeyError: 'lr'"),
        (Interrupted("SIGTERM at step 7"), SIGTERM_EXIT_CODE, None),
        (UserError("é" * 5000), 1, "UserError: " + "é" * (MAX_FAILURE_CHARS - 11)),
    ],
)
def test_the_failure_file_tells_the_users_errors_from_the_platforms(
    tmp_path: Path, error: Exception | None, status: int, failure: str | None
) -> None:
    path = tmp_path / "output" / "failure"
    assert run_job(lambda: None if error is None else _raise(error), path) == status
    assert (path.read_text() if path.exists() else None) == failure


def test_the_control_planes_regexes_are_the_toolkits_for_spotlines_own_metrics() -> None:
    assert metric_names.metric_definitions() == [
        {"Name": name, "Regex": metric_regex(name)} for name in metric_names.ALL
    ]


@given(
    st.from_regex(NAME, fullmatch=True),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(0, 10**9),
)
def test_a_metric_line_reads_back_through_its_regex(name: str, value: float, step: int) -> None:
    line = metric_line(name, value, step)
    match = re.search(job_metrics([name])[name], f"INFO noise {line}\n")
    if not math.isfinite(value):
        assert match is None  # SageMaker records nothing rather than a wrong number
        return
    assert match is not None
    assert math.isclose(float(match.group(1)), value, rel_tol=1e-5, abs_tol=1e-300)
    assert line.endswith(f" step={step}")


@pytest.mark.parametrize("name", ["", "a b", "loss\n#metric x", "x" * 256])
def test_a_metric_name_the_regexes_cannot_hold_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="metric name"):
        metric_line(name, 1.0, 1)


def test_paths_follow_the_contract_and_its_overrides(tmp_path: Path) -> None:
    paths = JobPaths.from_env({"SAGEMAKER_BASE_DIR": str(tmp_path)})
    assert (paths.checkpoints, paths.model, paths.failure) == (
        tmp_path / "checkpoints",
        tmp_path / "model",
        tmp_path / "output" / "failure",
    )
    assert paths.channel("train") == tmp_path / "input" / "data" / "train"
    assert paths.hyperparameters() == {}
    (tmp_path / "input" / "config").mkdir(parents=True)
    (tmp_path / "input" / "config" / "hyperparameters.json").write_text('{"lr": "0.1", "epochs": 3}')
    assert paths.hyperparameters() == {"lr": "0.1", "epochs": "3"}
    moved = JobPaths.from_env({"SAGEMAKER_BASE_DIR": str(tmp_path), "SPOTLINE_CHECKPOINT_DIR": "/x"})
    assert moved.checkpoints == Path("/x")
    assert JobPaths.from_env({}).base == Path("/opt/ml")
