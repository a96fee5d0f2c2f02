"""Where the running local stacks are, so that ``spotline status`` finds one from any directory.

``spotline local up`` records its workdir's absolute path in the user's state folder
(``$XDG_STATE_HOME/spotline/stacks/``, default ``~/.local/state/spotline/stacks/``) and removes the
record when it stops; a record whose stack ended uncleanly is recognised by its released lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

STATE_HOME_ENV = "XDG_STATE_HOME"


def registry() -> Path:
    base = os.environ.get(STATE_HOME_ENV) or str(Path.home() / ".local" / "state")
    return Path(base) / "spotline" / "stacks"


def _entry(workdir: Path) -> Path:
    digest = hashlib.sha256(str(Path(workdir).resolve()).encode()).hexdigest()[:16]
    return registry() / digest


def remember_running(workdir: Path) -> None:
    try:
        registry().mkdir(parents=True, exist_ok=True)
        _entry(workdir).write_text(str(Path(workdir).resolve()) + "\n")
    except OSError:  # a read-only home: the stack still runs, it is just not found from elsewhere
        pass


def forget_running(workdir: Path) -> None:
    with contextlib.suppress(OSError):
        _entry(workdir).unlink(missing_ok=True)


def recorded_workdirs() -> list[Path]:
    """Every recorded workdir, most recently started first (running or not: the caller checks)."""
    try:
        entries = sorted(registry().iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return []
    workdirs = []
    for entry in entries:
        try:
            workdirs.append(Path(entry.read_text().strip()))
        except OSError:
            continue
    return workdirs
