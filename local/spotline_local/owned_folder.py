"""Folders spotline writes into on a user's machine, without ever deleting what it did not write.

A folder is spotline's when spotline created it, or found it empty, and left a marker file in it
(``.spotline-owned``, JSON: what it is for and the entries spotline wrote). A non-empty folder without
the marker is the user's: spotline refuses it with a clear message instead of emptying it. Replacing
what a folder holds (:meth:`OwnedFolder.publish`) writes the new entries into a fresh subfolder first
and swaps them in only once they are complete, so a run that fails halfway leaves the previous
results where they were; it then removes only the entries the marker says spotline wrote before.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MARKER = ".spotline-owned"
STAGING_PREFIX = ".spotline-new-"


class ForeignFolder(Exception):
    """The folder holds files spotline did not write: it will not write there."""


@dataclass(frozen=True)
class OwnedFolder:
    path: Path
    purpose: str

    @property
    def marker(self) -> Path:
        return self.path / MARKER

    def entries(self) -> list[str]:
        """The top-level names spotline wrote here (recorded in the marker)."""
        try:
            data = json.loads(self.marker.read_text())
        except (OSError, ValueError):
            return []
        names = data.get("entries", []) if isinstance(data, dict) else []
        return [n for n in names if isinstance(n, str) and _plain_name(n)]

    def _record(self, entries: list[str]) -> None:
        text = json.dumps(
            {"written_by": f"spotline ({self.purpose})", "entries": sorted(set(entries))}, indent=2
        )
        temporary = self.path / f"{MARKER}.tmp"
        temporary.write_text(text + "\n")
        os.replace(temporary, self.marker)

    def remember(self, *names: str) -> None:
        """Record more entries as spotline's (before writing them, so a crash cannot orphan them)."""
        self._record([*self.entries(), *names])

    def clear(self, keep: tuple[str, ...] = ()) -> None:
        """Remove every entry spotline wrote here but ``keep``; anything else stays."""
        kept = [n for n in self.entries() if n in keep]
        for name in self.entries():
            if name not in keep:
                _remove(self.path / name)
        self._record(kept)

    @contextmanager
    def publish(self) -> Iterator[Path]:
        """A fresh subfolder to write the new contents into; swapped in when the block succeeds.

        On an exception the subfolder is removed and the folder keeps what it held before.
        """
        staging = self.path / f"{STAGING_PREFIX}{os.getpid()}"
        _remove(staging)
        staging.mkdir()
        try:
            yield staging
        except BaseException:
            _remove(staging)
            raise
        new = sorted(p.name for p in staging.iterdir())
        for name in self.entries():
            if name not in new:
                _remove(self.path / name)
        self._record([*self.entries(), *new])
        for name in new:
            target = self.path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)  # ours: listed in the marker, or about to be
            os.replace(staging / name, target)
        self._record(new)
        staging.rmdir()


def claim(path: Path, purpose: str) -> OwnedFolder:
    """``path`` as spotline's folder: created, or adopted when empty, or already marked as spotline's.

    :class:`ForeignFolder` when it exists with files of someone else's (or is not a folder).
    """
    path = Path(path).resolve()
    if path.exists() and not path.is_dir():
        raise ForeignFolder(f"{path} is a file, not a folder")
    folder = OwnedFolder(path, purpose)
    if path.is_dir():
        leftovers = [p for p in path.iterdir() if p.name.startswith(STAGING_PREFIX)]
        if folder.marker.is_file():
            for stale in leftovers:  # a previous run's unfinished subfolder: ours
                _remove(stale)
            return folder
        if any(path.iterdir()):
            raise ForeignFolder(
                f"{path} is not empty and was not made by spotline; spotline never deletes files it did "
                "not write"
            )
    path.mkdir(parents=True, exist_ok=True)
    folder._record([])
    return folder


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..", MARKER) and "/" not in name and "\\" not in name


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
