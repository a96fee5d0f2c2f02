"""Lay out a SageMaker ``/opt/ml`` tree in any directory, as SageMaker would: for tests, benchmarks, demos."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

CONTAINER_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_ROOT = CONTAINER_ROOT.parent / "functions"


def make_tree(
    base: Path,
    *,
    config_yaml: str | None = None,
    hyperparameters: Mapping[str, str] | None = None,
    channels: Mapping[str, Path] | None = None,
    hosts: tuple[str, ...] = ("algo-1",),
    current_host: str = "algo-1",
) -> Path:
    """Write the input config files and copy each channel directory to ``base/input/data/<name>``."""
    config_dir = base / "input" / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    data_dir = base / "input" / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    all_channels = dict(channels or {})
    if config_yaml is not None:
        config_channel = base / ".config-src"
        config_channel.mkdir(exist_ok=True)
        (config_channel / "run.yaml").write_text(config_yaml)
        all_channels["config"] = config_channel
    for name, src in all_channels.items():
        dst = data_dir / name
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(src, dst)
    (config_dir / "hyperparameters.json").write_text(json.dumps(dict(hyperparameters or {})))
    data_config = {
        name: {
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        }
        for name in all_channels
    }
    (config_dir / "inputdataconfig.json").write_text(json.dumps(data_config))
    resources = {"current_host": current_host, "hosts": list(hosts), "network_interface_name": "eth0"}
    (config_dir / "resourceconfig.json").write_text(json.dumps(resources))
    return base


def container_env(base: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of ``python -m spotline_container train`` on the tree at ``base``."""
    env = dict(os.environ)
    paths = [str(CONTAINER_ROOT), str(SCHEMA_ROOT), env.get("PYTHONPATH", "")]
    env.update(
        SAGEMAKER_BASE_DIR=str(base),
        PYTHONPATH=os.pathsep.join(p for p in paths if p),
        TRAINING_JOB_NAME=env.get("TRAINING_JOB_NAME", "local-job"),
    )
    env.update(extra or {})
    return env


def start(base: Path, extra_env: Mapping[str, str] | None = None, **popen: object) -> subprocess.Popen[str]:
    """Start the container's ``train`` program on the tree at ``base``."""
    proc: subprocess.Popen[str] = subprocess.Popen(
        [sys.executable, "-m", "spotline_container", "train"],
        env=container_env(base, extra_env),
        text=True,
        **popen,  # type: ignore[call-overload]
    )
    return proc
