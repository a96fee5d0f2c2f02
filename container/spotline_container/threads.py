"""How many CPU threads a job's math uses, and how its idle threads wait.

On a SageMaker instance the job has the machine to itself: torch's defaults (one thread per core,
OpenMP threads spinning between parallel regions) are right, and nothing here changes them. On a
shared machine (a laptop, the local stack, CI) they are not: every parallel region waits for its
slowest thread, and when another process holds the core that thread needs, each of the thousands of
regions of a training step waits for a scheduler time slice while its siblings spin and take the
cores the others need. The demo's run went 50 times slower that way instead of two or three.

``SPOTLINE_TORCH_THREADS`` asks for a shared-machine setting: a number of threads, or ``auto`` for
the cores free when the job starts (measured from ``/proc/stat``). Either way idle OpenMP threads
sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``, ``KMP_BLOCKTIME=0``), unless the
environment says otherwise. :func:`configure_threads` must run before torch is imported: OpenMP
reads its environment once, when it starts.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path

THREADS_ENV = "SPOTLINE_TORCH_THREADS"
AUTO = "auto"
PROC_STAT = Path("/proc/stat")


def cores_available() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_times(stat: str, cpus: set[int]) -> tuple[int, int]:
    """(idle, total) jiffies over ``cpus`` from the text of /proc/stat."""
    idle = total = 0
    for line in stat.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu" or not name[3:].isdigit():
            continue
        if int(name[3:]) not in cpus:
            continue
        values = [int(v) for v in rest.split()]
        idle += values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        total += sum(values[:8])  # guest time is already counted in user
    return idle, total


def free_cores(sample_s: float = 0.3, read: Callable[[], str] | None = None) -> float:
    """How many of this process's cores were idle over the last ``sample_s`` seconds."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    reader = read or PROC_STAT.read_text
    try:
        idle0, total0 = _cpu_times(reader(), cpus)
        time.sleep(sample_s)
        idle1, total1 = _cpu_times(reader(), cpus)
    except OSError:
        return float(len(cpus))  # no /proc (not Linux): assume the cores are ours
    elapsed = total1 - total0
    if elapsed <= 0:
        return float(len(cpus))
    return len(cpus) * (idle1 - idle0) / elapsed


def resolve_threads(value: str | None, cores: int, free: Callable[[], float] = free_cores) -> int | None:
    """The thread count ``SPOTLINE_TORCH_THREADS=value`` asks for, within 1..cores; None: torch's own."""
    text = (value or "").strip().lower()
    if not text:
        return None
    if text == AUTO:
        return max(1, min(cores, math.floor(free() + 0.5)))
    if not text.isdigit():
        return None  # not a setting of ours: torch keeps its defaults (the runner says so in its log)
    return max(1, min(cores, int(text)))


def configure_threads(
    environ: MutableMapping[str, str], free: Callable[[], float] = free_cores
) -> int | None:
    """Set OpenMP's and MKL's environment for the threads asked for; call before importing torch.

    Returns the thread count (also left in ``SPOTLINE_TORCH_THREADS`` for the runner), or None when
    nothing was asked and torch keeps its defaults.
    """
    threads = resolve_threads(environ.get(THREADS_ENV), cores_available(), free)
    if threads is None:
        return None
    for name in (THREADS_ENV, "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        environ[name] = str(threads)
    environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    environ.setdefault("KMP_BLOCKTIME", "0")
    return threads
