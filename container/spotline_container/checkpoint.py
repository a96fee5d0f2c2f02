"""Checkpoint files that survive being killed at any instant, and a reader that survives bad ones.

Write: temporary file, fsync, rename, fsync the directory, then the same for the ``latest`` pointer
(its one line names the newest file; the control plane reads it in S3 to follow a run's progress);
the last ``keep`` checkpoints stay. Read: the pointer's target first, then older checkpoints newest
first. Files load with ``weights_only=True`` (safe unpickling: a checkpoint holds tensors and plain
values only). A file that is unreadable, is not a checkpoint (not a mapping, no ``iteration`` whole
number, no model weights) or does not fit the model being trained (the caller's ``fits`` raises) is
skipped with a warning naming it, for the newest one that works. When there are checkpoints and
none works, that is a :class:`UserError` naming each file and why: relaunching would fail again.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from spotline_container.errors import UserError

log = logging.getLogger(__name__)

POINTER = "latest"
TMP_PREFIX = ".tmp-"
NAME = re.compile(r"model_(\d{8,})\.pt")
REQUIRED_KEYS = frozenset({"model", "optimizer", "iteration"})
MAX_LISTED_FAILURES = 5


class CheckpointUnusable(Exception):
    """A checkpoint file that cannot be resumed from; the message says why."""


def check_payload(state: Any) -> dict[str, Any]:
    """``state`` if it has a checkpoint's shape; :class:`CheckpointUnusable` saying what is wrong."""
    if not isinstance(state, dict):
        raise CheckpointUnusable(f"holds a {type(state).__name__}, not a checkpoint mapping")
    missing = sorted(REQUIRED_KEYS - state.keys())
    if missing:
        raise CheckpointUnusable(f"lacks {', '.join(missing)}")
    iteration = state["iteration"]
    if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0:
        raise CheckpointUnusable(f"iteration is {iteration!r}, not a whole number")
    model = state["model"]
    if not isinstance(model, Mapping) or not model:
        raise CheckpointUnusable("holds no model weights")
    if not all(isinstance(v, torch.Tensor) for v in model.values()):
        raise CheckpointUnusable("its model weights are not all tensors")
    return state


def read_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint in ``path`` (safe unpickling), checked for shape; :class:`CheckpointUnusable`."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated zip, a pickle of other types, a missing file
        raise CheckpointUnusable(f"unreadable ({type(e).__name__}: {_short(e)})") from e
    return check_payload(state)


def _short(error: BaseException, limit: int = 160) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


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

    def candidates(self) -> list[Path]:
        """Checkpoint files to try, best first: the pointer's target, then the others newest first."""
        candidates = [p for _, p in reversed(self.checkpoints())]
        pointed = self._pointed()
        if pointed is not None:
            return [pointed] + [p for p in candidates if p != pointed]
        if candidates:
            log.warning("checkpoint pointer '%s' missing or unreadable; using the newest file", POINTER)
        return candidates

    def load_latest(
        self,
        map_location: str | torch.device = "cpu",
        fits: Callable[[dict[str, Any]], object] | None = None,
    ) -> dict[str, Any] | None:
        """The newest checkpoint that loads and fits, or None if there is none at all.

        ``fits(state)`` raises when the state does not fit the model being trained (a throwaway
        copy of the trainer loading it). :class:`UserError` naming every file when none works.
        """
        rejected: list[str] = []
        for path in self.candidates():
            try:
                state = read_checkpoint(path, map_location)
                if fits is not None:
                    try:
                        fits(state)
                    except torch.OutOfMemoryError:
                        raise
                    except Exception as e:  # wrong shapes, missing keys, odd optimizer or RNG state
                        raise CheckpointUnusable(
                            f"does not fit this model ({type(e).__name__}: {_short(e)})"
                        ) from e
            except CheckpointUnusable as e:
                log.warning("checkpoint %s: %s; trying an older one", path.name, e)
                rejected.append(f"{path.name}: {e}")
                continue
            log.info("resuming from %s (iteration %d)", path.name, state["iteration"])
            return state
        if not rejected:
            return None
        listed = "; ".join(rejected[:MAX_LISTED_FAILURES])
        more = len(rejected) - MAX_LISTED_FAILURES
        raise UserError(
            f"no checkpoint in {self.directory} can be resumed from: {listed}"
            + (f"; and {more} more" if more > 0 else "")
        )
