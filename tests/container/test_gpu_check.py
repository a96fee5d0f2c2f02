"""The GPU check in its CPU mode (every code path it uses, on every change), its goal arithmetic, the
container fixes it led to, and the image: its base tag against the pin, its file set run on its own."""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
import textwrap
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks import gpu_check
from spotline.config import parse_run_config
from spotline_container.distributed import DistContext
from spotline_container.model import MEAN, STD, CenterNet, _mean_std, normalize
from spotline_container.sagemaker_tree import make_tree
from spotline_container.solver import build_optimizer
from spotline_container.train import build_trainer
from tests.container.conftest import tiny_config
from tests.support.processes import run_watched

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "container" / "Dockerfile"
# CUDA builds PyTorch publishes per release (its RELEASE.md compatibility matrix; see the Dockerfile).
PUBLISHED_CUDA = {"2.13.0": {"12.6", "13.0", "13.2"}}
TRAIN_VARIANTS = ("fp32", "fp16_channels_last", "bf16_channels_last", "bf16_channels_last_compile")


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def cpu_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("gpu-check") / "cpu.json"
    proc = run_watched(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--cpu", "--out", str(out)]
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert out.with_suffix(".txt").read_text().startswith("spotline GPU check (cpu mode")
    report: dict[str, Any] = json.loads(out.read_text())
    return report


@pytest.mark.slow
def test_cpu_mode_measures_every_figure(cpu_report: dict[str, Any]) -> None:
    assert cpu_report["errors"] == {}
    assert cpu_report["skipped"] == {}
    assert cpu_report["finished"]
    assert cpu_report["environment"]["torch"] == torch.__version__
    train = cpu_report["train"]
    assert tuple(train) == TRAIN_VARIANTS
    for name, row in train.items():
        for figure in ("step_images_per_s", "pipeline_images_per_s"):
            assert row[figure]["n"] >= 5, (name, figure)
            assert all(_positive(v) for v in row[figure]["windows"]), (name, figure)
            assert _positive(row[figure]["median"]), (name, figure)
        assert 0 < row["busy"]["value"] <= 1, name
        assert row["host_syncs_per_step"] == 0, name
        assert _positive(row["final_loss"]), name
    assert train["bf16_channels_last_compile"]["compile_backend"] == "aot_eager"
    for host in gpu_check.HOSTS:
        assert _positive(cpu_report["loader"][host]["images_per_s"]["median"]), host
        assert cpu_report["loader"][host]["workers"] >= 1
    inference = cpu_report["inference"]
    for amp in ("fp16", "bf16"):
        assert _positive(inference[amp]["model_images_per_s"]["median"]), amp
    assert inference["end_to_end"]["images"] == cpu_report["plan"]["infer_images"]
    assert _positive(inference["end_to_end"]["images_per_s"]["median"])
    profile = cpu_report["profile"]
    assert profile["top_ops"]
    assert set(profile["phases"]) == set(gpu_check.PHASES)
    assert all(_positive(p["cpu_ms"]) for p in profile["phases"].values())
    assert _positive(profile["sample"]["per_sample_ms"])
    assert 0 < profile["host_step_fraction"] <= 1
    assert profile["kernel_time_fraction"] is None  # no kernels on a CPU


@pytest.mark.slow
def test_cpu_mode_checks_ddp_resume_and_the_goals(cpu_report: dict[str, Any]) -> None:
    ddp = cpu_report["ddp"]["checked"]
    assert ddp["backend"] == "gloo"
    assert ddp["devices"] == ["cpu", "cpu"]
    assert ddp["losses_differ_across_ranks"]  # each rank trained on its own share of the batch
    assert ddp["grad_max_abs_diff"] == 0.0
    assert ddp["param_max_abs_diff"] == 0.0
    resume = cpu_report["resume"]
    assert resume["bitwise_equal"]
    assert len(resume["losses_resumed"]) == resume["steps"]
    checks = {c["name"]: c for c in cpu_report["checks"]}
    expected = {
        "mixed_precision_channels_last_vs_fp32",
        "ddp_gradients_agree",
        "resume_same_losses",
        *(f"loader_vs_fastest_step[{host}]" for host in gpu_check.HOSTS),
        *(f"busy_in_steady_training[{name}]" for name in TRAIN_VARIANTS),
    }
    assert set(checks) == expected
    assert checks["ddp_gradients_agree"]["pass"]
    assert checks["resume_same_losses"]["pass"]
    assert all(isinstance(c["pass"], bool) and c["value"] is not None for c in checks.values())


def test_nvidia_smi_lines_parse() -> None:
    assert gpu_check.parse_smi_line("97, 12345\n") == (97.0, 12345.0)
    assert gpu_check.parse_smi_line("[N/A], 100") is None
    assert gpu_check.parse_smi_line("utilization.gpu [%], memory.used [MiB]") is None


def test_gpu_sampler_follows_nvidia_smi_where_nvml_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        '#!/bin/sh\necho "utilization.gpu, memory.used"\nwhile true; do echo "87, 1234"; sleep 0.02; done\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setitem(sys.modules, "pynvml", None)  # as where nvidia-ml-py is not installed
    sampler = gpu_check.GpuSampler(torch.device("cpu"))
    assert sampler.source == "unavailable"
    sampler.attach(torch.device("cuda", 0))
    assert sampler.source == "nvidia-smi"
    sampler.start()
    deadline = time.monotonic() + 10
    while len(sampler.samples) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    samples = sampler.stop()
    assert len(samples) >= 3
    assert set(samples) == {(87.0, 1234.0)}


def test_union_of_intervals_counts_overlaps_once() -> None:
    assert gpu_check.union_length([(5, 7), (0, 2), (1, 3), (6, 6.5)]) == 5
    assert gpu_check.union_length([]) == 0


def test_goals_pass_and_fail_on_the_figures() -> None:
    def row(step: float, amp: str = "none", busy: float = 0.95) -> dict[str, Any]:
        return {"amp": amp, "compile": False, "step_images_per_s": {"median": step}, "busy": {"value": busy}}

    data = {
        "train": {"fp32": row(100.0), "bf16_channels_last": row(210.0, "bf16", busy=0.5)},
        "loader": {
            "ml.g4dn.xlarge": {"images_per_s": {"median": 300.0}, "workers": 3, "cores_used": 4},
            "ml.p3.2xlarge": {"images_per_s": {"median": 320.0}, "workers": 7, "cores_used": 8},
        },
    }
    checks = {c["name"]: c for c in gpu_check.evaluate_checks(data)}
    assert checks["mixed_precision_channels_last_vs_fp32"]["value"] == 2.1
    assert checks["mixed_precision_channels_last_vs_fp32"]["pass"]
    assert not checks["loader_vs_fastest_step[ml.g4dn.xlarge]"]["pass"]  # 300 / 210 < 1.5
    assert checks["loader_vs_fastest_step[ml.p3.2xlarge]"]["pass"]  # 320 / 210 >= 1.5
    assert checks["busy_in_steady_training[fp32]"]["pass"]
    assert not checks["busy_in_steady_training[bf16_channels_last]"]["pass"]


# --- container fixes the check measures -------------------------------------------------------------


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
                else:  # into the folder ``dest/``, or to the file ``dest``
                    into = target if dest.endswith("/") else target.parent
                    into.mkdir(parents=True, exist_ok=True)
                    shutil.copy(src, into / src.name if dest.endswith("/") else target)
                copied.append(source)
    assert {"container/spotline_container/", "container/spotline_toolkit/"} <= set(copied)
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
    proc = run_watched(
        [sys.executable, *entrypoint[1:], "train"], cwd=image / Path(workdir).relative_to("/"), env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (base / "model" / "model.pt").is_file()
    modules = dict(line.split(" ", 1) for line in loaded.read_text().splitlines())
    assert "spotline.config" in modules
    assert "spotline_container.evaluation" in modules  # the val channel was evaluated
    files = {name: path for name, path in modules.items() if path != "None"}  # namespace packages have none
    assert all(path.startswith(str(image)) for path in files.values()), files
