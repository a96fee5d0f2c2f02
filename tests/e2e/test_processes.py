"""Processes end with their parent, one stack per workdir, found from any directory.

Each test runs ``spotline`` as a user does, in a process of its own, and looks at the process list.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import (
    activity,
    alive,
    descendants,
    run_watched,
    wait_for_exit,
    wait_on,
    wait_until_gone,
)

pytestmark = pytest.mark.slow
SPOTLINE = [sys.executable, "-m", "spotline_local.cli.main"]


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """The environment of a user whose state folder (where running stacks are recorded) is fresh."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SPOTLINE_"))}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def spotline(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run one ``spotline`` command to its end, as long as it keeps working."""
    return run_watched([*SPOTLINE, *args], env=env, cwd=cwd)


class Up:
    """``spotline local up`` running in the background, its output collected."""

    def __init__(self, workdir: Path, env: dict[str, str], cwd: Path) -> None:
        self.log = cwd / f"up-{workdir.name}.log"
        self.process = subprocess.Popen(
            [*SPOTLINE, "local", "up", "--workdir", str(workdir)],
            env=env,
            cwd=cwd,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_on("the stack to come up", self._up, lambda: activity(self.process.pid, self.log))

    def _up(self) -> bool | None:
        assert self.process.poll() is None, self.log.read_text()
        return True if "local stack is up" in self.log.read_text() else None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            wait_for_exit(self.process, self.log)


@pytest.fixture
def up(tmp_path: Path, home: dict[str, str]) -> Iterator[list[Up]]:
    started: list[Up] = []
    yield started
    for stack in started:
        stack.stop()


def test_one_stack_per_workdir_found_from_any_directory_and_stopped_by_local_down(
    tmp_path: Path, home: dict[str, str], up: list[Up]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    first = Up(project / ".spotline" / "local", home, project)
    up.append(first)
    children = descendants(first.process.pid)
    assert any("moto.server" in c for c in children.values())

    second = spotline(["local", "up"], home, project)
    assert second.returncode == 2
    assert f"a local stack already runs in {project / '.spotline' / 'local'}" in second.stderr
    assert f"(pid {first.process.pid}" in second.stderr
    assert (project / ".spotline" / "local" / "stack.json").is_file()  # the first one's, untouched

    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    status = spotline(["status"], home, elsewhere)
    assert status.returncode == 0 and "no runs yet" in status.stdout, status.stderr

    down = spotline(["local", "down"], home, elsewhere)
    assert down.returncode == 0 and "stopped" in down.stdout, down.stderr
    assert wait_for_exit(first.process, first.log) == 0
    assert "stopping the local stack" in first.log.read_text()
    assert alive(children) == {}
    assert spotline(["status"], home, elsewhere).returncode == 2  # nothing runs any more


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stopped_stack_leaves_no_process_behind(
    tmp_path: Path, home: dict[str, str], up: list[Up], how: signal.Signals
) -> None:
    stack = Up(tmp_path / "work", home, tmp_path)
    up.append(stack)
    children = descendants(stack.process.pid)
    assert children
    stack.process.send_signal(how)
    assert wait_for_exit(stack.process, stack.log) == 0
    assert alive(children) == {}
    assert not (tmp_path / "work" / "stack.json").exists()


def test_a_killed_stack_takes_its_children_with_it_and_its_lock_is_not_mistaken_for_a_live_one(
    tmp_path: Path, home: dict[str, str], up: list[Up]
) -> None:
    stack = Up(tmp_path / "work", home, tmp_path)
    children = descendants(stack.process.pid)
    stack.process.send_signal(signal.SIGKILL)  # no clean-up at all
    stack.process.wait()  # SIGKILL ends it at once
    wait_until_gone(children)  # moto got SIGTERM from the kernel when its parent died

    status = spotline(["status", "--workdir", str(tmp_path / "work")], home, tmp_path)
    assert status.returncode == 2 and "ended without stopping cleanly" in status.stderr
    again = Up(tmp_path / "work", home, tmp_path)  # the stale lock does not block a new stack
    up.append(again)


def test_the_demo_stopped_mid_training_says_interrupted_and_leaves_nothing_running(
    tmp_path: Path, home: dict[str, str]
) -> None:
    out, work = tmp_path / "demo-output", tmp_path / "demo-work"
    log = tmp_path / "demo.log"
    demo = subprocess.Popen(
        [*SPOTLINE, "demo", "--out", str(out), "--workdir", str(work)],
        env=home,
        cwd=tmp_path,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_on("the demo to start training", lambda: _training(demo, log), lambda: activity(demo.pid, log))
        children = descendants(demo.pid)
        demo.send_signal(signal.SIGTERM)
        assert wait_for_exit(demo, log) == 128 + signal.SIGTERM
    finally:
        if demo.poll() is None:
            demo.kill()
    text = log.read_text()
    assert "interrupted" in text and "Traceback" not in text, text
    assert alive(children) == {}
    assert sorted(p.name for p in out.iterdir()) == [".spotline-owned"]  # no half-written results


def _training(demo: subprocess.Popen[str], log: Path) -> bool | None:
    assert demo.poll() is None, log.read_text()
    return True if any("spotline_container" in c for c in descendants(demo.pid).values()) else None
