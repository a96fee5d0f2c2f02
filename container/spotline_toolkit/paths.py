"""The SageMaker training contract's tree, rooted at ``SAGEMAKER_BASE_DIR`` (default ``/opt/ml``).

Tests and spotline's local stack run the same image code on a temporary tree by setting the
variable; ``SPOTLINE_CHECKPOINT_DIR`` moves the checkpoints alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

BASE_ENV = "SAGEMAKER_BASE_DIR"
CHECKPOINT_ENV = "SPOTLINE_CHECKPOINT_DIR"


@dataclass(frozen=True)
class JobPaths:
    base: Path
    checkpoints: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JobPaths:
        env = os.environ if env is None else env
        base = Path(env.get(BASE_ENV) or "/opt/ml")
        return cls(base, Path(env.get(CHECKPOINT_ENV) or base / "checkpoints"))

    @property
    def model(self) -> Path:
        return self.base / "model"

    @property
    def failure(self) -> Path:
        return self.base / "output" / "failure"

    def channel(self, name: str) -> Path:
        return self.base / "input" / "data" / name

    def hyperparameters(self) -> dict[str, str]:
        """SageMaker's hyperparameters (all text); empty if the file is absent."""
        path = self.base / "input" / "config" / "hyperparameters.json"
        if not path.is_file():
            return {}
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not a JSON object")
        return {str(k): str(v) for k, v in data.items()}
