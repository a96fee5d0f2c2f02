"""The detector's checkpoints: the toolkit's atomic, fallback-reading files holding PyTorch state.

:class:`CheckpointStore` keeps ``model_<iteration>.pt`` files of model, optimizer, scheduler,
scaler, RNG and data-order state (:mod:`spotline_toolkit.torch_state`). A file that is unreadable,
is not a checkpoint (not a mapping, no ``iteration`` whole number, no model weights) or does not
fit the model being trained is skipped with a warning naming it, for the newest one that works;
when there are checkpoints and none works, that is a ``UserError`` naming each file and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from spotline_toolkit.checkpoints import CheckpointUnusable
from spotline_toolkit.torch_state import TorchCheckpoints

REQUIRED_KEYS = frozenset({"model", "optimizer", "iteration"})


class CheckpointStore(TorchCheckpoints):
    def __init__(self, directory: Path, keep: int) -> None:
        super().__init__(directory, keep, required=REQUIRED_KEYS)

    def check(self, state: Any) -> dict[str, Any]:
        """A checkpoint's shape, and model weights that are tensors."""
        checked = super().check(state)
        model: Any = checked["model"]
        if not isinstance(model, Mapping) or not model:
            raise CheckpointUnusable("holds no model weights")
        if not all(isinstance(v, torch.Tensor) for v in model.values()):
            raise CheckpointUnusable("its model weights are not all tensors")
        return checked
