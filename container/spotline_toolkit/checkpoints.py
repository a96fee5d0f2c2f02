"""Checkpoint files that survive being killed at any instant, and a reader that survives bad ones.

Write: temporary file, fsync, rename, fsync the directory, then the same for the ``latest`` pointer
(its one line names the newest file; spotline's control plane reads it in S3 to follow a run's
progress); the last ``keep`` checkpoints stay. Read: the pointer's target first, then older
checkpoints newest first; a file the loader cannot use (truncated by a kill during an S3 sync,
corrupt, not a checkpoint, not fitting the model) is skipped with a warning naming it and why. When
there are checkpoints and none can be used, that is a :class:`UserError` naming each file:
relaunching would fail the same way. The format of a checkpoint is the caller's: the loader reads it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from spotline_toolkit.failures import UserError

log = logging.getLogger(__name__)

POINTER = "latest"
TMP_PREFIX = ".tmp-"
MAX_LISTED_FAILURES = 5
T = TypeVar("T")


class CheckpointUnusable(Exception):
    """A loader's way to say a checkpoint file cannot be resumed from; the message says why."""


def short_error(error: BaseException, limit: int = 160) -> str:
    """An exception's text on one line, cut to ``limit`` characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


class CheckpointDir:
    """Numbered checkpoints ``<prefix><step:08d><suffix>`` in ``directory``, newest named by ``latest``."""

    def __init__(
        self, directory: Path, *, keep: int = 3, prefix: str = "checkpoint_", suffix: str = ""
    ) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, not {keep}")
        self.directory, self.keep, self.prefix, self.suffix = Path(directory), keep, prefix, suffix
        self._name = re.compile(re.escape(prefix) + r"(\d{8,})" + re.escape(suffix))

    def path_for(self, step: int) -> Path:
        return self.directory / f"{self.prefix}{step:08d}{self.suffix}"

    def checkpoints(self) -> list[tuple[int, Path]]:
        """``(step, path)`` of every checkpoint file, oldest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            m = self._name.fullmatch(path.name)
            if m:
                found.append((int(m.group(1)), path))
        return sorted(found)

    def clean_temporaries(self) -> None:
        """Remove temporary files left by a process killed mid-write."""
        if self.directory.is_dir():
            for path in self.directory.glob(f"{TMP_PREFIX}*"):
                path.unlink(missing_ok=True)

    def save(self, step: int, write: Callable[[BinaryIO], object]) -> Path:
        """Write checkpoint ``step`` with ``write(file)``, point ``latest`` at it, drop the oldest."""
        if step < 0:
            raise ValueError(f"a checkpoint step is not negative, not {step}")
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path_for(step)
        atomic_write(path, write)
        atomic_write_bytes(self.directory / POINTER, f"{path.name}\n".encode())
        for _, old in self.checkpoints()[: -self.keep]:
            old.unlink(missing_ok=True)
        log.info("checkpoint %s written", path.name)
        return path

    def _pointed(self) -> Path | None:
        try:
            name = (self.directory / POINTER).read_text().strip()
        except (OSError, UnicodeDecodeError):
            return None
        return self.directory / name if self._name.fullmatch(name) else None

    def candidates(self) -> list[Path]:
        """Checkpoint files in the order to try them: the pointer's, then the rest newest first."""
        newest_first = [p for _, p in reversed(self.checkpoints())]
        pointed = self._pointed()
        if pointed is not None:
            return [pointed] + [p for p in newest_first if p != pointed]
        if newest_first:
            log.warning("checkpoint pointer '%s' missing or unreadable; using the newest file", POINTER)
        return newest_first

    def load_latest(
        self, load: Callable[[Path], T], *, passthrough: tuple[type[BaseException], ...] = (MemoryError,)
    ) -> tuple[Path, T] | None:
        """``(path, load(path))`` of the newest checkpoint ``load`` can use; None if there is none.

        :class:`CheckpointUnusable` from ``load`` says why a file cannot be used; any other exception
        means it is unreadable (a truncated file, a bad pickle) — except ``passthrough`` ones, such
        as running out of memory, which are no fault of the file. Either way the next older file is
        tried; :class:`UserError` naming every file when none works."""
        rejected: list[str] = []
        for path in self.candidates():
            try:
                return path, load(path)
            except passthrough:
                raise
            except CheckpointUnusable as e:
                why = str(e)
            except Exception as e:
                why = f"unreadable ({type(e).__name__}: {short_error(e)})"
            log.warning("checkpoint %s: %s; trying an older one", path.name, why)
            rejected.append(f"{path.name}: {why}")
        if not rejected:
            return None
        listed = "; ".join(rejected[:MAX_LISTED_FAILURES])
        more = len(rejected) - MAX_LISTED_FAILURES
        raise UserError(
            f"no checkpoint in {self.directory} can be resumed from: {listed}"
            + (f"; and {more} more" if more > 0 else "")
        )
