"""Checkpoint files that survive being killed at any instant, and a reader that survives bad ones.

Write: temporary file, fsync, rename, fsync the directory, then the same for the ``latest`` pointer;
the last ``keep`` checkpoints stay. Read: the pointer's target first, then older checkpoints newest
first; a truncated or corrupt file is skipped with a warning. Files load with ``weights_only=True``:
a checkpoint holds tensors and plain values only.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

POINTER = "latest"
TMP_PREFIX = ".tmp-"
NAME = re.compile(r"model_(\d{8,})\.pt")
REQUIRED_KEYS = frozenset({"model", "optimizer", "iteration"})


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it into place."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def atomic_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


class CheckpointStore:
    def __init__(self, directory: Path, keep: int) -> None:
        self.directory, self.keep = directory, keep

    def checkpoints(self) -> list[tuple[int, Path]]:
        """``(iteration, path)`` of every checkpoint file, oldest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            m = NAME.fullmatch(path.name)
            if m:
                found.append((int(m.group(1)), path))
        return sorted(found)

    def clean_temporaries(self) -> None:
        """Remove temporary files left by a process killed mid-write."""
        if self.directory.is_dir():
            for path in self.directory.glob(f"{TMP_PREFIX}*"):
                path.unlink(missing_ok=True)

    def save(self, state: dict[str, Any], iteration: int) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"model_{iteration:08d}.pt"
        atomic_save(state, path)
        atomic_write(self.directory / POINTER, lambda f: f.write(f"{path.name}\n".encode()))
        for _, old in self.checkpoints()[: -self.keep]:
            old.unlink(missing_ok=True)
        log.info("checkpoint %s written", path.name)
        return path

    def _pointed(self) -> Path | None:
        try:
            name = (self.directory / POINTER).read_text().strip()
        except (OSError, UnicodeDecodeError):
            return None
        return self.directory / name if NAME.fullmatch(name) else None

    def load_latest(self, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
        """The newest readable checkpoint, or None if there is none."""
        candidates = [p for _, p in reversed(self.checkpoints())]
        pointed = self._pointed()
        if pointed is not None:
            candidates = [pointed] + [p for p in candidates if p != pointed]
        elif candidates:
            log.warning("checkpoint pointer '%s' missing or unreadable; using the newest file", POINTER)
        for path in candidates:
            try:
                state = torch.load(path, map_location=map_location, weights_only=True)
            except Exception as e:  # a truncated zip, a bad pickle, a missing file: all mean "skip it"
                log.warning(
                    "checkpoint %s is unreadable (%s: %s); trying an older one",
                    path.name,
                    type(e).__name__,
                    e,
                )
                continue
            if not isinstance(state, dict) or not state.keys() >= REQUIRED_KEYS:
                log.warning("checkpoint %s is incomplete; trying an older one", path.name)
                continue
            log.info("resuming from %s (iteration %d)", path.name, state["iteration"])
            return state
        return None
