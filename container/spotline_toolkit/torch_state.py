"""Checkpoints of PyTorch state (tensors and plain values) in a :class:`CheckpointDir`.

Imports torch when used, so the rest of the toolkit stays standard-library only. Files load with
``weights_only=True``: a checkpoint can hold no code.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from spotline_toolkit.checkpoints import CheckpointDir, UnusableCheckpoint, atomic_write

log = logging.getLogger(__name__)


def torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path``, atomically."""
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))


class TorchCheckpoints:
    """``model_<iteration>.pt`` files of a dict holding at least ``required`` keys and ``iteration``."""

    def __init__(
        self, directory: Path, keep: int, *, required: frozenset[str] = frozenset({"iteration"})
    ) -> None:
        self.files = CheckpointDir(directory, keep=keep, prefix="model_", suffix=".pt")
        self.required = required | {"iteration"}

    def save(self, state: dict[str, Any], iteration: int) -> Path:
        import torch

        return self.files.save(iteration, lambda f: torch.save(state, f))

    def load_latest(self, map_location: Any = "cpu") -> dict[str, Any] | None:
        """The newest readable checkpoint, or None if there is none."""
        import torch

        def load(path: Path) -> dict[str, Any]:
            state = torch.load(path, map_location=map_location, weights_only=True)
            if not isinstance(state, dict) or not state.keys() >= self.required:
                raise UnusableCheckpoint(f"it lacks {', '.join(sorted(self.required))}")
            return state

        found = self.files.load_latest(load)
        if found is None:
            return None
        path, state = found
        log.info("resuming from %s (iteration %d)", path.name, state["iteration"])
        return state
