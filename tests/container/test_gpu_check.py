"""The GPU check in its CPU mode (every code path it uses, on every change), its goal arithmetic, the
container fixes it led to, and the image: its base tag against the pin, its file set run on its own."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import torch

from spotline.config import parse_run_config
from spotline_container.distributed import DistContext
from spotline_container.model import MEAN, STD, CenterNet, _mean_std, normalize
from spotline_container.sagemaker_tree import make_tree
from spotline_container.solver import build_optimizer
from spotline_container.train import build_trainer
from tests.container.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "container" / "Dockerfile"
# CUDA builds PyTorch publishes per release (its RELEASE.md compatibility matrix; see the Dockerfile).
PUBLISHED_CUDA = {"2.13.0": {"12.6", "13.0", "13.2"}}


def test_normalize_builds_its_constants_once_and_computes_the_same() -> None:
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.equal(normalize(images, False), (images.float() - mean) / std)
    assert normalize(images, True).is_contiguous(memory_format=torch.channels_last)
    assert _mean_std(images.device)[0] is _mean_std(images.device)[0]  # no host-to-device copy per step


def test_optimizer_kernels_are_this_devices_not_the_checkpoints() -> None:
    config = parse_run_config(tiny_config(max_iter=4))
    model = CenterNet.from_config(config, 3)
    optimizer = build_optimizer(model, config.solver)
    assert all(g["fused"] is None for g in optimizer.param_groups)  # CPU numerics unchanged
    saved = optimizer.state_dict()
    for group in saved["param_groups"]:
        group["fused"] = True  # as written by a job on a GPU
    trainer = build_trainer(config, 3, DistContext(0, 1, 0, torch.device("cpu")), [])
    trainer.load_state_dict({**trainer.state_dict(), "optimizer": saved})
    assert all(g["fused"] is None for g in trainer.optimizer.param_groups)


# --- the image ------------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            name, _, rest = line.partition(" ")
            out.append((name.upper(), rest.strip()))
    return out


def test_base_image_carries_the_pinned_torch_in_a_published_cuda_build() -> None:
    base = next(rest for name, rest in _instructions() if name == "FROM")
    m = re.fullmatch(
        r"pytorch/pytorch:(?P<torch>[\d.]+)-cuda(?P<cuda>[\d.]+)-cudnn(?P<cudnn>\d+)-runtime", base
    )
    assert m, base
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][
        "container"
    ]
    assert f"torch=={m['torch']}" in extra
    assert m["torch"] in PUBLISHED_CUDA, f"look up the CUDA builds PyTorch publishes for {m['torch']}"
    assert m["cuda"] in PUBLISHED_CUDA[m["torch"]]


SITECUSTOMIZE = """
import atexit, os, sys
# Only what the image holds may be imported: drop the development install's finder for the repository.
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]

def _report():
    with open(os.environ["LOADED_MODULES_FILE"], "w") as f:
        for name, module in sorted(sys.modules.items()):
            if name.split(".")[0].startswith("spotline"):
                f.write(f"{name} {getattr(module, '__file__', None)}\\n")

atexit.register(_report)
"""


@pytest.mark.slow
def test_the_image_file_set_trains_on_its_own(tmp_path: Path, channels: dict[str, Path]) -> None:
    """What the COPY lines bring, laid out as in the image, runs the ENTRYPOINT with nothing else at hand."""
    image = tmp_path / "image"
    workdir, pythonpath = "/", ""
    entrypoint: list[str] = []
    copied = []
    for name, rest in _instructions():
        if name == "WORKDIR":
            workdir = rest
        elif name == "ENV" and "PYTHONPATH=" in rest:
            pythonpath = re.search(r"PYTHONPATH=(\S+)", rest)[1]  # type: ignore[index]
        elif name == "ENTRYPOINT":
            entrypoint = json.loads(rest)
        elif name == "COPY":
            *sources, dest = [a for a in rest.split() if not a.startswith("--")]
            target = image / Path(workdir, dest).relative_to("/")
            for source in sources:
                src = ROOT / source
                if src.is_dir():
                    shutil.copytree(
                        src, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(src, target / src.name if dest.endswith("/") else target)
                copied.append(source)
    assert "container/spotline_container/" in copied
    assert entrypoint[:1] == ["python"]
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(textwrap.dedent(SITECUSTOMIZE))
    paths = [str(image / Path(p).relative_to("/")) for p in pythonpath.split(":")]
    base = make_tree(tmp_path / "ml", config_yaml=tiny_config(max_iter=4), channels=channels)
    loaded = tmp_path / "loaded.txt"
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PYTHONPATH": ":".join([*paths, str(hooks)]),
        "SAGEMAKER_BASE_DIR": str(base),
        "OMP_NUM_THREADS": "1",
        "LOADED_MODULES_FILE": str(loaded),
    }
    proc = subprocess.run(
        [sys.executable, *entrypoint[1:], "train"],
        cwd=image / Path(workdir).relative_to("/"),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (base / "model" / "model.pt").is_file()
    modules = dict(line.split(" ", 1) for line in loaded.read_text().splitlines())
    assert "spotline.config" in modules
    assert "spotline_container.evaluation" in modules  # the val channel was evaluated
    files = {name: path for name, path in modules.items() if path != "None"}  # namespace packages have none
    assert all(path.startswith(str(image)) for path in files.values()), files
