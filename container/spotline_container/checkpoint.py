"""The detector's checkpoints: the toolkit's atomic, fallback-reading files holding PyTorch state.

:class:`CheckpointStore` keeps ``model_<iteration>.pt`` files of model, optimizer, scheduler,
scaler, RNG and data-order state (:mod:`spotline_toolkit.torch_state`); a file without model,
optimizer and iteration is skipped like a truncated one.
"""

from __future__ import annotations

from pathlib import Path

from spotline_toolkit.torch_state import TorchCheckpoints

REQUIRED_KEYS = frozenset({"model", "optimizer", "iteration"})


class CheckpointStore(TorchCheckpoints):
    def __init__(self, directory: Path, keep: int) -> None:
        super().__init__(directory, keep, required=REQUIRED_KEYS)

    def checkpoints(self) -> list[tuple[int, Path]]:
        """``(iteration, path)`` of every checkpoint file, oldest first."""
        return self.files.checkpoints()

    def clean_temporaries(self) -> None:
        self.files.clean_temporaries()
