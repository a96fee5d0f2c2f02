"""The process list, as ``ps`` would show it: who descends from whom, and who is still alive."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from spotline_local.progress import Stalled, wait_for_progress

T = TypeVar("T")
STALL_S = 120.0  # a wait fails when nothing it watches moved this long, never at a fixed deadline


def _fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state first), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a live process, or None."""
    fields = _fields(pid)
    return None if fields is None else (fields[0], int(fields[1]))


def cpu_ticks(pid: int) -> int:
    """CPU time used so far by ``pid`` and every live process under it, in clock ticks."""
    total = 0
    for each in [pid, *descendants(pid)]:
        fields = _fields(each)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def descendants(pid: int) -> dict[int, str]:
    """Every live process under ``pid`` (children, their children...), with its command line."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                parents[int(entry.name)] = stat[1]
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                found[child] = command_line(child)
                frontier.append(child)
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def alive(pids: dict[int, str]) -> dict[int, str]:
    """Those of ``pids`` still running (zombies waiting for their parent do not run)."""
    out = {}
    for pid, command in pids.items():
        stat = _stat(pid)
        if stat is not None and stat[0] != "Z" and command_line(pid) == command:
            out[pid] = command
    return out


def activity(pid: int, *logs: Path) -> Hashable:
    """What moves while a process tree works: its CPU time, its live processes, its logs' sizes."""
    sizes = tuple(log.stat().st_size if log.exists() else -1 for log in logs)
    return cpu_ticks(pid), tuple(sorted(descendants(pid))), sizes


def wait_on(what: str, check: Callable[[], T | None], moving: Callable[[], Hashable]) -> T:
    """Poll ``check`` until it returns something; fail naming ``what`` once ``moving()`` has not
    changed for :data:`STALL_S` — a busy machine makes the wait longer, not red."""
    try:
        return wait_for_progress(what, check, moving, stall_s=STALL_S, period_s=0.2)
    except Stalled as e:
        pytest.fail(str(e))


def wait_for_exit(process: subprocess.Popen[str], *logs: Path) -> int:
    """The exit status of ``process``, waiting as long as it (or a child of it) still works."""
    return wait_on(f"process {process.pid} to exit", process.poll, lambda: activity(process.pid, *logs))


def wait_until_gone(pids: dict[int, str]) -> None:
    """Wait until none of ``pids`` runs; fail if one of them stops working without ending."""
    wait_on(
        f"{sorted(pids)} to end",
        lambda: True if not alive(pids) else None,
        lambda: tuple(cpu_ticks(p) for p in alive(pids)),
    )


def run_watched(
    args: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(args, capture_output=True, text=True)`` without a deadline: it waits as
    long as the command (or a child of it) keeps working, and fails the test once nothing moved for
    :data:`STALL_S`."""
    command = [str(a) for a in args]
    with tempfile.TemporaryDirectory() as logs:
        out, err = Path(logs) / "stdout", Path(logs) / "stderr"
        with out.open("w") as stdout, err.open("w") as stderr:
            process = subprocess.Popen(
                command,
                cwd=cwd,
                env=None if env is None else dict(env),
                stdout=stdout,
                stderr=stderr,
                text=True,
            )
            try:
                code = wait_for_exit(process, out, err)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        return subprocess.CompletedProcess(command, code, out.read_text(), err.read_text())
