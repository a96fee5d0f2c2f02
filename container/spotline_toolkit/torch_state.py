"""Checkpoints of PyTorch state (tensors and plain values) in a :class:`CheckpointDir`.

Imports torch when used, so the rest of the toolkit stays standard-library only. Files load with
``weights_only=True`` (safe unpickling: a checkpoint can hold no code).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spotline_toolkit.checkpoints import CheckpointDir, CheckpointUnusable, atomic_write, short_error

log = logging.getLogger(__name__)


def torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path``, atomically."""
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))


def torch_load(path: Path, map_location: Any = "cpu") -> Any:
    """``torch.load`` with safe unpickling; :class:`CheckpointUnusable` if it cannot be read."""
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated zip, a pickle of other types, a missing file
        raise CheckpointUnusable(f"unreadable ({type(e).__name__}: {short_error(e)})") from e


class TorchCheckpoints:
    """``model_<iteration>.pt`` files of a dict holding at least ``required`` keys and ``iteration``."""

    def __init__(
        self, directory: Path, keep: int, *, required: frozenset[str] = frozenset({"iteration"})
    ) -> None:
        self.files = CheckpointDir(directory, keep=keep, prefix="model_", suffix=".pt")
        self.required = required | {"iteration"}

    def checkpoints(self) -> list[tuple[int, Path]]:
        """``(iteration, path)`` of every checkpoint file, oldest first."""
        return self.files.checkpoints()

    def candidates(self) -> list[Path]:
        return self.files.candidates()

    def clean_temporaries(self) -> None:
        self.files.clean_temporaries()

    def save(self, state: dict[str, Any], iteration: int) -> Path:
        import torch

        return self.files.save(iteration, lambda f: torch.save(state, f))

    def check(self, state: Any) -> dict[str, Any]:
        """``state`` if it is a checkpoint of this store; :class:`CheckpointUnusable` saying why not."""
        if not isinstance(state, dict):
            raise CheckpointUnusable(f"holds a {type(state).__name__}, not a checkpoint mapping")
        missing = sorted(self.required - state.keys())
        if missing:
            raise CheckpointUnusable(f"lacks {', '.join(missing)}")
        iteration = state["iteration"]
        if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0:
            raise CheckpointUnusable(f"iteration is {iteration!r}, not a whole number")
        return state

    def load_latest(
        self, map_location: Any = "cpu", fits: Callable[[dict[str, Any]], object] | None = None
    ) -> dict[str, Any] | None:
        """The newest checkpoint that loads, passes :meth:`check` and ``fits`` (which raises when the
        state does not fit the model being trained); None if there is none; the toolkit's
        ``UserError`` naming every file when there are some and none works."""
        import torch

        def load(path: Path) -> dict[str, Any]:
            state = self.check(torch_load(path, map_location))
            if fits is not None:
                try:
                    fits(state)
                except torch.OutOfMemoryError:
                    raise
                except Exception as e:  # wrong shapes, missing keys, odd optimizer or RNG state
                    raise CheckpointUnusable(
                        f"does not fit this model ({type(e).__name__}: {short_error(e)})"
                    ) from e
            return state

        found = self.files.load_latest(load, passthrough=(MemoryError, torch.OutOfMemoryError))
        if found is None:
            return None
        path, state = found
        log.info("resuming from %s (iteration %d)", path.name, state["iteration"])
        return state
