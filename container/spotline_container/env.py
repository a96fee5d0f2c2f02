"""The SageMaker training contract, read once into a frozen snapshot (the toolkit's ``Environment``).

Everything lives under a base directory, ``$SAGEMAKER_BASE_DIR`` or ``/opt/ml``, so tests and the
local stack run the very same code on a temporary tree.
"""

from __future__ import annotations

import json
import os
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spotline.config.tuning import TRIAL_CHECKPOINTS_ENV
from spotline_toolkit.paths import JobPaths

ATTEMPT_ENV = "SPOTLINE_ATTEMPT"
JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
PLATFORM_HYPERPARAMETER_PREFIXES = ("_", "sagemaker_")


def attempt_from_env(environ: Mapping[str, str]) -> int:
    """The job's attempt number as spotline set it in the job's environment, 0 when unknown."""
    text = str(environ.get(ATTEMPT_ENV) or "")
    return int(text) if text.isdigit() and 0 < int(text) < 10_000 else 0


def _read_json(path: Path, default: Any) -> Any:
    if not path.is_file():
        return default
    return json.loads(path.read_text())


@dataclass(frozen=True)
class SageMakerEnvironment:
    base_dir: Path
    hyperparameters: Mapping[str, str]
    input_data_config: Mapping[str, Mapping[str, Any]]
    hosts: tuple[str, ...]
    current_host: str
    job_name: str
    checkpoint_dir: Path
    network_interface: str | None = None
    attempt: int = 0  # spotline's attempt number of this job (SPOTLINE_ATTEMPT); 0 when unknown

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SageMakerEnvironment:
        environ = os.environ if environ is None else environ
        paths = JobPaths.from_env(environ)
        base = paths.base
        config = base / "input" / "config"
        raw_hps = _read_json(config / "hyperparameters.json", {})
        hps = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in raw_hps.items()}
        data_config = _read_json(config / "inputdataconfig.json", {})
        resources = _read_json(config / "resourceconfig.json", {})
        hosts = tuple(resources.get("hosts") or ("algo-1",))
        current = str(resources.get("current_host") or hosts[0])
        checkpoints = paths.checkpoints
        job_name = environ.get("TRAINING_JOB_NAME", "local")
        if environ.get(TRIAL_CHECKPOINTS_ENV) == "1":
            # A tuning trial: every trial gets the same checkpoint location, so each keeps its own
            # under its job's name (the same name when Managed Spot restarts the trial).
            if not JOB_NAME.fullmatch(job_name):
                raise ValueError(f"TRAINING_JOB_NAME {job_name!r} is not a SageMaker job name")
            checkpoints = checkpoints / job_name
        return cls(
            base_dir=base,
            hyperparameters=types.MappingProxyType(hps),
            input_data_config=types.MappingProxyType(dict(data_config)),
            hosts=hosts,
            current_host=current,
            job_name=job_name,
            checkpoint_dir=checkpoints,
            network_interface=resources.get("network_interface_name"),
            attempt=attempt_from_env(environ),
        )

    @property
    def paths(self) -> JobPaths:
        return JobPaths(self.base_dir, self.checkpoint_dir)

    @property
    def model_dir(self) -> Path:
        return self.paths.model

    @property
    def failure_file(self) -> Path:
        return self.paths.failure

    def channel_dir(self, name: str) -> Path:
        return self.paths.channel(name)

    def has_channel(self, name: str) -> bool:
        """A channel SageMaker announced or, without inputdataconfig.json, a directory that exists."""
        if self.input_data_config:
            return name in self.input_data_config and self.channel_dir(name).is_dir()
        return self.channel_dir(name).is_dir()

    @property
    def config_overrides(self) -> dict[str, str]:
        """Hyperparameters that set config keys (SageMaker's and the tuner's own keys left out)."""
        return {
            k: v
            for k, v in self.hyperparameters.items()
            if not k.startswith(PLATFORM_HYPERPARAMETER_PREFIXES)
        }

    @property
    def sorted_hosts(self) -> tuple[str, ...]:
        return tuple(sorted(self.hosts))
