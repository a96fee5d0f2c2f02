"""One local stack per workdir: an advisory lock on ``<workdir>/stack.lock`` held while a stack runs.

The lock is ``flock``: the kernel releases it when its holder ends, however it ends (even killed), so
a lock left behind by a dead stack is never mistaken for a running one. The file also says who holds
it (pid, command, start time), for the message a second ``spotline local up`` prints and for
``spotline local down``.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

LOCK_FILE = "stack.lock"


class StackRunning(Exception):
    """Another process holds the workdir's lock."""

    def __init__(self, workdir: Path, holder: dict[str, Any]) -> None:
        self.workdir = workdir
        self.holder = holder
        pid = holder.get("pid", "?")
        super().__init__(f"a local stack already runs in {workdir} (pid {pid}: {holder.get('command', '?')})")


class StackLock:
    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.path = self.workdir / LOCK_FILE
        self._handle: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self) -> None:
        """Take the lock or raise :class:`StackRunning`; the holder's details are written into it."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise StackRunning(self.workdir, read_holder(self.path) or {}) from None
        handle.seek(0)
        handle.truncate()
        details = {"pid": os.getpid(), "command": " ".join(sys.argv) or sys.executable, "since": time.time()}
        handle.write(json.dumps(details))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def read_holder(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def holder(workdir: Path) -> dict[str, Any] | None:
    """Who runs a stack in ``workdir`` now, or None (no lock, or a lock its dead holder left)."""
    path = Path(workdir) / LOCK_FILE
    if not path.is_file():
        return None
    with path.open("r") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return read_holder(path) or {}
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None
