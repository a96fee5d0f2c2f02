"""The container on a real GPU, in one command: the figures the case's speed-up rests on, on our code.

Every figure comes from the container's own code paths (``build_trainer``, ``build_train_loader``,
``CheckpointStore``, ``init_process_group``, ``run_inference``), at the reference config's size on a GPU:

- environment: torch, its CUDA and cuDNN, NCCL, the device and whether torch was built for it;
- train: images/s in fp32, fp16 + channels_last, bf16 + channels_last and bf16 + channels_last +
  torch.compile, for the model step alone and the whole pipeline (loader + step), each the median of
  windows after warm-up; GPU utilisation and memory sampled alongside (NVML, else nvidia-smi), host
  syncs per step counted (CUDA's sync debug mode), peak memory;
- loader: the train loader alone on the cores of an ml.g4dn.xlarge / ml.p3.2xlarge, against the step;
- inference: model images/s in fp16 and bf16, and the inference mode end to end (JPEG decoding incl.);
- ddp: two processes train a few steps (NCCL on 2 GPUs; on one GPU NCCL is tried, then gloo) and the
  gradients of the ranks are compared;
- resume: a checkpoint written mid-run is resumed: the losses must equal the uninterrupted run's;
- profile: torch.profiler over steady pipeline steps (top ops, the step's phases, kernel time) and a
  host profile of one training sample (decode + augmentation + targets);
- checks: the goals (mixed precision >= 2x fp32, loader >= 1.5x the fastest step, busy >= 90 %) and
  the correctness checks, as pass/fail.

The JSON is rewritten after every section, so a run cut short still leaves its figures.

    python benchmarks/gpu_check.py --out benchmarks/results/gpu-<date>.json   # one GPU, <= 8 min
    python benchmarks/gpu_check.py --cpu --out /tmp/gpu-check-cpu.json        # CPU stand-ins, small sizes
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import importlib
import itertools
import json
import math
import os
import platform
import pstats
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "container"), str(ROOT / "functions")]

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from spotline.config import RunConfig, parse_run_config  # noqa: E402
from spotline_container.checkpoint import CheckpointStore  # noqa: E402
from spotline_container.data import CocoChannel, build_train_loader, load_coco_channel  # noqa: E402
from spotline_container.distributed import (  # noqa: E402
    DistContext,
    LaunchPlan,
    init_process_group,
    shutdown,
    worker_env,
)
from spotline_container.env import SageMakerEnvironment  # noqa: E402
from spotline_container.hooks import CheckpointHook  # noqa: E402
from spotline_container.inference import run_inference  # noqa: E402
from spotline_container.model import CenterNet, normalize  # noqa: E402
from spotline_container.postprocess import decode  # noqa: E402
from spotline_container.precision import autocast  # noqa: E402
from spotline_container.sagemaker_tree import make_tree  # noqa: E402
from spotline_container.synthetic import CLASSES, generate_dataset  # noqa: E402
from spotline_container.train import build_trainer, save_model  # noqa: E402
from spotline_container.trainer import Hook, Trainer  # noqa: E402
from spotline_toolkit.checkpoints import atomic_write  # noqa: E402

SCHEMA = 1
BASE_YAML = "job: {channels: {train: datasets/rail/train}}\n"
# vCPUs of the hosts the reference config trains on (one GPU each); the loader gets that many cores.
HOSTS = {"ml.g4dn.xlarge": 4, "ml.p3.2xlarge": 8}
SYNC_WARNING = "called a synchronizing CUDA operation"
SYNC_STEPS = 3
PHASES = ("step/forward", "step/loss", "step/backward", "step/optimizer")
GOAL_MIXED = 2.0
GOAL_LOADER = 1.5
GOAL_BUSY = 0.90
GRAD_TOLERANCE = 1e-6  # relative to the largest gradient entry
RESUME_TOLERANCE = 1e-6  # relative to the loss


@dataclass(frozen=True)
class Plan:
    """Sizes and budgets of one run: the reference config's on a GPU, a tiny model on the CPU."""

    cpu: bool
    size: int
    batch: int
    depth: int
    width: int
    head_width: int
    train_workers: int
    warmup: int
    windows: int
    window_steps: int
    loader_batches: int
    train_images: int
    infer_images: int
    infer_batch: int
    infer_workers: int
    ddp_steps: int
    resume_steps: int
    profile_steps: int
    budget_s: float  # the GPU run's wall-clock budget; the CPU mode (a correctness check) has none
    worker_stall_s: float  # a DDP worker whose log has not moved for this long is stuck
    compile_backend: str


def reference_plan(cpu: bool) -> Plan:
    """The reference config's model and batch on a GPU (<= 8 min on an H100); seconds-small on a CPU."""
    ref = parse_run_config(BASE_YAML)
    model = {"size": ref.input.size, "batch": ref.solver.batch_size, "depth": ref.model.depth}
    model |= {"width": ref.model.width, "head_width": ref.model.head_width}
    loaders = {"train_workers": ref.dataloader.num_workers, "infer_workers": ref.inference.num_workers}
    steps = {"warmup": 10, "windows": 5, "window_steps": 20, "loader_batches": 20, "ddp_steps": 5}
    steps |= {"resume_steps": 5, "profile_steps": 10, "train_images": 64, "infer_images": 256}
    steps |= {"infer_batch": ref.inference.batch_size}
    gpu = Plan(
        cpu=False, budget_s=450, worker_stall_s=180, compile_backend="inductor", **model, **loaders, **steps
    )
    if not cpu:
        return gpu
    # inductor needs ~60 s to compile even the tiny model on two cores, more than this mode may take:
    # aot_eager still traces the model and its backward through dynamo and AOTAutograd.
    tiny = {"size": 64, "batch": 8, "depth": 1, "width": 8, "head_width": 16, "infer_batch": 8}
    few = {"warmup": 2, "window_steps": 2, "loader_batches": 2, "ddp_steps": 3, "resume_steps": 3}
    few |= {
        "profile_steps": 3,
        "train_images": 16,
        "infer_images": 16,
        "train_workers": 1,
        "infer_workers": 1,
    }
    return replace(
        gpu, cpu=True, budget_s=math.inf, worker_stall_s=120, compile_backend="aot_eager", **tiny, **few
    )


def make_config(
    plan: Plan,
    *,
    amp: str = "none",
    channels_last: bool = False,
    compiled: bool = False,
    workers: int = 0,
    max_iter: int = 100_000,
    extra: dict[str, str] | None = None,
) -> RunConfig:
    """The reference config with the plan's sizes, through the same schema a job's config goes through."""
    overrides = {
        "model.depth": str(plan.depth),
        "model.width": str(plan.width),
        "model.head_width": str(plan.head_width),
        "input.size": str(plan.size),
        "dataloader.num_workers": str(workers),
        "solver.batch_size": str(plan.batch),
        "solver.max_iter": str(max_iter),
        "solver.warmup_iters": "0",
        "solver.amp": amp,
        "solver.channels_last": str(channels_last).lower(),
        "solver.compile": str(compiled).lower(),
        **(extra or {}),
    }
    return parse_run_config(BASE_YAML, overrides=overrides)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_of(values: list[float]) -> dict[str, Any]:
    """``{"median", "windows", "n"}`` of per-window figures."""
    return {
        "median": round(statistics.median(values), 3) if values else None,
        "windows": [round(v, 3) for v in values],
        "n": len(values),
    }


def rates(seconds: list[float], images_per_window: int) -> dict[str, Any]:
    return median_of([images_per_window / s for s in seconds if s > 0])


def mixed_amp(device: torch.device) -> str:
    """bf16 where the device runs it (the CPU, Ampere and newer), else fp16."""
    return "bf16" if device.type == "cpu" or torch.cuda.is_bf16_supported() else "fp16"


# ---------------------------------------------------------------------------------------------------
# Measuring tools: window clock, input-stall timer, GPU sampler, host-sync counter


class WindowClock(Hook):
    """Times ``windows`` of ``steps`` steps after ``warmup`` steps; syncs the device at each edge only."""

    def __init__(
        self,
        warmup: int,
        steps: int,
        device: torch.device,
        *,
        waited: Callable[[], float] = lambda: 0.0,
        on_start: Callable[[], None] = lambda: None,
    ) -> None:
        self.warmup, self.steps, self.device = warmup, steps, device
        self.waited, self.on_start = waited, on_start
        self.seconds: list[float] = []
        self.wait_seconds: list[float] = []
        self.first_step_s: float | None = None
        self._begin = self._edge = self._wait_edge = 0.0

    def before_train(self) -> None:
        self._begin = time.perf_counter()

    def after_step(self) -> None:
        done = self.trainer.iter - self.trainer.start_iter
        if done == 1:
            sync(self.device)
            self.first_step_s = time.perf_counter() - self._begin
        if done < self.warmup or (done - self.warmup) % self.steps:
            return
        sync(self.device)
        now, waited = time.perf_counter(), self.waited()
        if done == self.warmup:
            self.on_start()
        else:
            self.seconds.append(now - self._edge)
            self.wait_seconds.append(waited - self._wait_edge)
        self._edge, self._wait_edge = now, waited


class TimedBatches:
    """A loader with the time spent waiting for each batch added up: the step's input stalls."""

    def __init__(self, batches: Iterable[dict[str, torch.Tensor]]) -> None:
        self.batches, self.waited = batches, 0.0

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        it = iter(self.batches)
        try:
            while True:
                start = time.perf_counter()
                try:
                    batch = next(it)
                except StopIteration:
                    return
                self.waited += time.perf_counter() - start
                yield batch
        finally:
            del it  # shuts the loader's workers down


def parse_smi_line(line: str) -> tuple[float, float] | None:
    """``"97, 12345"`` (utilization.gpu %, memory.used MiB, csv without units) -> (97.0, 12345.0)."""
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != 2:
        return None
    try:
        return float(parts[0]), float(parts[1])
    except ValueError:
        return None  # "[N/A]" or a header


def gpu_uuid(device: torch.device) -> str | None:
    try:
        return f"GPU-{torch.cuda.get_device_properties(device).uuid}"
    except (AttributeError, RuntimeError, AssertionError):
        return None


class GpuSampler:
    """GPU utilisation (%) and memory used (MiB) every ``period`` s: NVML, else nvidia-smi, else nothing."""

    def __init__(self, device: torch.device, period: float = 0.1) -> None:
        self.period, self.source, self.note = period, "unavailable", ""
        self.samples: list[tuple[float, float]] = []
        self._read: Callable[[], tuple[float, float]] | None = None
        self._smi_args: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[str] | None = None
        if device.type == "cuda":
            self.attach(device)

    def attach(self, device: torch.device) -> None:
        """Find the way to read ``device``: NVML, else nvidia-smi (``source`` says which)."""
        uuid = gpu_uuid(device)
        try:
            nvml = importlib.import_module("pynvml")  # nvidia-ml-py, where installed
            nvml.nvmlInit()
            handle = None
            if uuid:  # the same GPU whatever CUDA_VISIBLE_DEVICES renumbered
                with contextlib.suppress(Exception):
                    handle = nvml.nvmlDeviceGetHandleByUUID(uuid.encode())
            if handle is None:
                handle = nvml.nvmlDeviceGetHandleByIndex(device.index or 0)

            def read() -> tuple[float, float]:
                rates_ = nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                return float(rates_.gpu), float(memory.used) / 2**20

            read()
            self._read, self.source = read, "nvml"
            return
        except Exception as e:  # not installed, or NVML refused: try the command line
            self.note = f"nvml: {type(e).__name__}: {e}"
        smi = shutil.which("nvidia-smi")
        if smi:
            query = ["--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
            self._smi_args = [smi, *query, "-i", uuid or str(device.index or 0)]
            self.source = "nvidia-smi"

    def start(self) -> None:
        self.samples, self._stop = [], threading.Event()
        if self.source == "nvml":
            self._thread = threading.Thread(target=self._poll, daemon=True)
        elif self.source == "nvidia-smi":
            loop = [*self._smi_args, "-lms", str(max(1, int(self.period * 1000)))]
            self._proc = subprocess.Popen(loop, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self._thread = threading.Thread(target=self._follow, daemon=True)
        if self._thread is not None:
            self._thread.start()

    def _poll(self) -> None:
        assert self._read is not None
        while not self._stop.wait(self.period):
            self.samples.append(self._read())

    def _follow(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            sample = parse_smi_line(line)
            if sample is not None:
                self.samples.append(sample)

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        return list(self.samples)


def count_host_syncs(device: torch.device, run: Callable[[], None]) -> int:
    """How often ``run`` makes the host wait for the GPU (CUDA's sync debug mode warns each time)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        previous = torch.cuda.get_sync_debug_mode() if device.type == "cuda" else None
        if previous is not None:
            torch.cuda.set_sync_debug_mode("warn")
        try:
            run()
        finally:
            if previous is not None:
                torch.cuda.set_sync_debug_mode(previous)
    sync(device)
    return sum(SYNC_WARNING in str(w.message) for w in caught)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


def union_length(intervals: Iterable[tuple[float, float]]) -> float:
    """How much of the line ``intervals`` cover, overlaps counted once."""
    total, end = 0.0, -math.inf
    for low, high in sorted(intervals):
        if high > end:
            total += high - max(low, end)
            end = high
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------------------
# The report: sections, budget, partial writes


class Report:
    """The JSON being built, rewritten (atomically) after every section, and its text summary."""

    def __init__(self, out: Path, plan: Plan, device: torch.device) -> None:
        self.out, self.plan, self.device = out, plan, device
        self.started = time.monotonic()
        self.data: dict[str, Any] = {
            "schema": SCHEMA,
            "mode": "cpu" if plan.cpu else "gpu",
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "finished": None,
            "wall_s": None,
            "plan": asdict(plan),
            "errors": {},
            "skipped": {},
        }

    def time_left(self) -> float:
        return self.plan.budget_s - (time.monotonic() - self.started)

    def section(self, name: str, needs_s: float, run: Callable[[], Any]) -> None:
        """Run one section into ``data[name]``; skip it when the budget cannot take ``needs_s`` more."""
        if self.time_left() < needs_s:
            self.data["skipped"][name] = (
                f"{self.time_left():.0f} s of the budget left, it needs ~{needs_s:.0f} s"
            )
        else:
            start = time.monotonic()
            try:
                self.data[name] = run()
            except Exception as e:
                self.data["errors"][name] = f"{type(e).__name__}: {e}\n{traceback.format_exc()[-3000:]}"
            self.data.setdefault("section_s", {})[name] = round(time.monotonic() - start, 1)
        self.write()

    def write(self) -> None:
        self.data["checks"] = evaluate_checks(self.data)
        self.data["wall_s"] = round(time.monotonic() - self.started, 1)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.data, indent=2, default=str)
        atomic_write(self.out, lambda f: f.write(text.encode()))

    def finish(self) -> str:
        self.data["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.write()
        summary = summarise(self.data)
        summary_path = self.out.with_suffix(".txt")
        atomic_write(summary_path, lambda f: f.write(summary.encode()))
        return summary


# ---------------------------------------------------------------------------------------------------
# Sections


def environment(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda_build": torch.version.cuda,
        "cudnn": _cudnn_version(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cpu_count": os.cpu_count(),
        "cores_allowed": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type != "cuda":
        env.update(device=f"CPU ({torch.get_num_threads()} threads)", gpus=0, nccl=None)
        return env
    props = torch.cuda.get_device_properties(device)
    arch = f"sm_{props.major}{props.minor}"
    env.update(
        device=props.name,
        gpus=torch.cuda.device_count(),
        capability=f"{props.major}.{props.minor}",
        memory_gib=round(props.total_memory / 2**30, 1),
        multiprocessors=props.multi_processor_count,
        arch_list=torch.cuda.get_arch_list(),
        built_for_device=arch in torch.cuda.get_arch_list(),
        bf16_supported=torch.cuda.is_bf16_supported(),
        nccl=_nccl_version(),
        driver=_smi_value("driver_version"),
    )
    return env


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def _cudnn_version() -> int | None:
    cudnn: Any = torch.backends.cudnn  # untyped module functions
    return int(cudnn.version()) if cudnn.is_available() and cudnn.version() else None


def _nccl_version() -> str | None:
    try:
        version = getattr(torch.cuda, "nccl").version()  # noqa: B009 - untyped module
    except (AttributeError, RuntimeError):
        return None
    return ".".join(str(v) for v in version) if isinstance(version, tuple) else str(version)


def _smi_value(field: str) -> str | None:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        done = subprocess.run(
            [smi, f"--query-gpu={field}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def make_data(plan: Plan, tmp: Path) -> dict[str, Path]:
    """Synthetic rail images at the plan's size; the inference set repeats the unlabelled images."""
    unique = min(plan.infer_images, plan.train_images)
    data = generate_dataset(tmp / "data", plan.train_images, 0, unique, seed=0, image_size=plan.size)
    images = tmp / "images"
    sources = sorted(data["unlabelled"].glob("*.jpg"))
    for i in range(plan.infer_images):
        folder = images / f"part-{i // len(sources):02d}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(sources[i % len(sources)], folder / sources[i % len(sources)].name)
    return {"train": data["train"], "images": images}


def first_batch(plan: Plan, channel: CocoChannel, device: torch.device) -> dict[str, torch.Tensor]:
    """One training batch as the loader hands it over (pinned on CUDA)."""
    loader = build_train_loader(
        channel,
        make_config(plan, max_iter=1),
        rank=0,
        world=1,
        start_iter=0,
        pin_memory=device.type == "cuda",
    )
    return next(iter(loader))


VARIANTS = (
    # name, amp ("mixed": bf16 where supported, else fp16), channels_last, compile
    ("fp32", "none", False, False),
    ("fp16_channels_last", "fp16", True, False),
    ("bf16_channels_last", "mixed", True, False),
    ("bf16_channels_last_compile", "mixed", True, True),
)


def train_variant(
    plan: Plan, ctx: DistContext, channel: CocoChannel, amp: str, channels_last: bool, compiled: bool
) -> dict[str, Any]:
    """The model step alone (batch already on the device), then the pipeline (train loader + step)."""
    device = ctx.device
    steps = plan.warmup + plan.windows * plan.window_steps
    workers = min(plan.train_workers, max(1, len(os.sched_getaffinity(0)) - 1))
    config = make_config(
        plan, amp=amp, channels_last=channels_last, compiled=compiled, workers=workers, max_iter=steps
    )
    row: dict[str, Any] = {
        "amp": amp,
        "channels_last": channels_last,
        "compile": compiled,
        "workers": workers,
    }
    if compiled:
        row["compile_backend"] = plan.compile_backend
    host_batch = first_batch(plan, channel, device)
    device_batch = {k: v.to(device) for k, v in host_batch.items()}
    images_per_window = plan.window_steps * plan.batch

    clock = WindowClock(plan.warmup, plan.window_steps, device)
    reset_peak(device)
    trainer = build_trainer(
        config,
        len(CLASSES),
        ctx,
        itertools.repeat(device_batch),
        hooks=[clock],
        compile_backend=plan.compile_backend,
    )
    trainer.train()
    row["step_images_per_s"] = rates(clock.seconds, images_per_window)
    row["first_step_s"] = round(clock.first_step_s or 0.0, 3)

    def steps_from_the_host() -> None:  # a pinned batch, as the loader hands it over
        for _ in range(SYNC_STEPS):
            trainer.run_step(host_batch)

    row["host_syncs_per_step"] = count_host_syncs(device, steps_from_the_host) / SYNC_STEPS
    row["peak_memory_mib"] = peak_mib(device)
    row["final_loss"] = round(float(trainer.last_loss), 5)
    del trainer

    sampler = GpuSampler(device)
    timed = TimedBatches(
        build_train_loader(channel, config, rank=0, world=1, start_iter=0, pin_memory=device.type == "cuda")
    )
    clock = WindowClock(
        plan.warmup, plan.window_steps, device, waited=lambda: timed.waited, on_start=sampler.start
    )
    trainer = build_trainer(
        config, len(CLASSES), ctx, timed, hooks=[clock], compile_backend=plan.compile_backend
    )
    try:
        trainer.train()
    finally:
        samples = sampler.stop()
    row["pipeline_images_per_s"] = rates(clock.seconds, images_per_window)
    wait_fraction = sum(clock.wait_seconds) / max(sum(clock.seconds), 1e-9)
    row["input_wait_fraction"] = round(wait_fraction, 4)
    row["gpu_sampler"] = sampler.source + (f" ({sampler.note})" if sampler.note and not samples else "")
    row["gpu_utilization_pct"] = median_of([u for u, _ in samples])
    row["gpu_memory_used_mib"] = median_of([m for _, m in samples])
    if samples:
        row["busy"] = {
            "value": round(statistics.median(u for u, _ in samples) / 100, 4),
            "source": sampler.source,
        }
    elif device.type == "cuda":
        row["busy"] = {"value": None, "source": "unavailable (no NVML, no nvidia-smi): see profile"}
    else:
        row["busy"] = {
            "value": round(1 - wait_fraction, 4),
            "source": "host time in the step, not waiting (CPU)",
        }
    return row


def train_section(
    plan: Plan, ctx: DistContext, channel: CocoChannel, report: Report, only: set[str] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    mixed = mixed_amp(ctx.device)
    for name, amp, channels_last, compiled in VARIANTS:
        if only is not None and name not in only:
            continue
        if amp == "fp16" and mixed == "fp16":
            continue  # the "mixed" rows are fp16 on this device already
        amp_ = mixed if amp == "mixed" else amp
        label = name.replace("bf16", amp_) if amp == "mixed" else name
        needs = (90.0 if compiled else 25.0) * (0.1 if plan.cpu else 1.0)
        if report.time_left() < needs:
            report.data["skipped"][f"train.{label}"] = f"{report.time_left():.0f} s left"
            continue
        try:
            out[label] = train_variant(plan, ctx, channel, amp_, channels_last, compiled)
        except Exception as e:
            report.data["errors"][f"train.{label}"] = (
                f"{type(e).__name__}: {e}\n{traceback.format_exc()[-3000:]}"
            )
        report.data["train"] = out
        report.write()
    return out


def loader_section(plan: Plan, channel: CocoChannel, device: torch.device) -> dict[str, Any]:
    """The train loader alone with a host's cores (CPU affinity) and one worker fewer than its vCPUs."""
    allowed = sorted(os.sched_getaffinity(0))
    out: dict[str, Any] = {}
    for host, vcpus in HOSTS.items():
        cores = allowed[:vcpus]
        workers = max(1, len(cores) - 1)
        loader = build_train_loader(
            channel,
            make_config(plan, workers=workers),
            rank=0,
            world=1,
            start_iter=0,
            pin_memory=device.type == "cuda",
        )
        os.sched_setaffinity(0, cores)  # the workers fork at iter() and inherit it
        try:
            batches = iter(loader)
            for _ in range(workers * (loader.prefetch_factor or 1) + 2):  # fill the prefetch queues
                next(batches)
            seconds = []
            for _ in range(plan.windows):
                start = time.perf_counter()
                for _ in range(plan.loader_batches):
                    next(batches)
                seconds.append(time.perf_counter() - start)
            del batches
        finally:
            os.sched_setaffinity(0, allowed)
        out[host] = {
            "vcpus": vcpus,
            "cores_used": len(cores),
            "workers": workers,
            "pin_memory": device.type == "cuda",
            "images_per_s": rates(seconds, plan.loader_batches * plan.batch),
        }
    return out


def inference_section(plan: Plan, ctx: DistContext, data: dict[str, Path], tmp: Path) -> dict[str, Any]:
    """Model images/s in fp16 and bf16 (decode incl.), then ``run_inference`` end to end."""
    device = ctx.device
    cuda = device.type == "cuda"
    config = make_config(plan)
    torch.manual_seed(0)
    model = CenterNet.from_config(config, len(CLASSES)).to(device).eval()
    if cuda:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(
        0, 256, (plan.infer_batch, 3, plan.size, plan.size), dtype=torch.uint8, generator=generator
    )
    images = images.to(device)
    out: dict[str, Any] = {"batch": plan.infer_batch}
    for amp in ("fp16", "bf16"):
        if cuda and amp == "bf16" and not torch.cuda.is_bf16_supported():
            out[amp] = {"skipped": "bf16 not supported by this GPU"}
            continue
        seconds = []
        with torch.no_grad():
            for window in range(1 + plan.windows):
                sync(device)
                start = time.perf_counter()
                for _ in range(plan.window_steps):
                    with autocast(amp, device):
                        outputs = model(normalize(images, cuda))
                    decode(outputs, config.model.max_detections)
                sync(device)
                if window:  # the first window warms up
                    seconds.append(time.perf_counter() - start)
        out[amp] = {"model_images_per_s": rates(seconds, plan.window_steps * plan.infer_batch)}

    model_dir = tmp / "model"
    save_model(model_dir, model, CLASSES, {"input": {"size": plan.size}}, {})
    amp = "bf16" if not cuda or torch.cuda.is_bf16_supported() else "fp16"
    infer_config = make_config(
        plan,
        extra={
            "mode": "inference",
            "inference.batch_size": str(plan.infer_batch),
            "inference.num_workers": str(plan.infer_workers),
            "inference.amp": amp,
            "inference.shard_size": str(plan.infer_images),
        },
    )
    base = make_tree(tmp / "ml", channels={"images": data["images"]})
    env = SageMakerEnvironment.from_env({"SAGEMAKER_BASE_DIR": str(base)})
    seconds = []
    for run in range(1 + plan.windows):
        shutil.rmtree(env.checkpoint_dir, ignore_errors=True)  # done shards are not redone: start afresh
        start = time.perf_counter()
        summary = run_inference(env, infer_config, model_dir, ctx, lambda: False)
        if run:
            seconds.append(time.perf_counter() - start)
    out["end_to_end"] = {
        "amp": amp if cuda else "none (CPUs run float32)",
        "workers": plan.infer_workers,
        "images": summary["images"],
        "images_per_s": rates(seconds, summary["images"]),
    }
    return out


class GradProbe(Hook):
    """After each step: how far the ranks' gradients (and losses) are apart, through the host group."""

    def __init__(self) -> None:
        self.grad_diff: list[float] = []
        self.grad_scale: list[float] = []
        self.loss_spread: list[float] = []

    def after_step(self) -> None:
        t = self.trainer
        grads = torch.cat(
            [p.grad.detach().float().flatten() for p in t.model.parameters() if p.grad is not None]
        )
        self.grad_diff.append(_spread(grads.cpu(), t.ctx))
        self.grad_scale.append(float(grads.abs().max()))
        self.loss_spread.append(_spread(t.last_loss.detach().float().cpu().reshape(1), t.ctx))
        print(f"ddp step {t.iter}", flush=True)  # the parent watches the log move


def _spread(values: torch.Tensor, ctx: DistContext) -> float:
    """max over elements of (largest - smallest value across ranks)."""
    high, low = values.clone(), values.clone()
    dist.all_reduce(high, op=dist.ReduceOp.MAX, group=ctx.host_group)
    dist.all_reduce(low, op=dist.ReduceOp.MIN, group=ctx.host_group)
    return float((high - low).abs().max())


def ddp_worker(args: argparse.Namespace) -> int:
    """One rank of the DDP check (started by :func:`ddp_section` with the launcher's environment)."""
    plan = Plan(**json.loads(args.plan))
    out = Path(args.ddp_worker)
    rank = int(os.environ["RANK"])
    result: dict[str, Any] = {"rank": rank}
    code = 0
    print(f"ddp rank {rank} starting", flush=True)
    try:
        cuda = torch.cuda.is_available()
        if args.ddp_backend == "gloo" and cuda:  # one GPU for both ranks: CUDA tensors over gloo
            dist.init_process_group("gloo")
        ctx = init_process_group()
        result.update(backend=dist.get_backend(), device=str(ctx.device))
        config = make_config(
            plan, amp=mixed_amp(ctx.device), channels_last=cuda, workers=1, max_iter=plan.ddp_steps
        )
        loader = build_train_loader(
            load_coco_channel(Path(args.data)),
            config,
            rank=ctx.rank,
            world=ctx.world_size,
            start_iter=0,
            pin_memory=cuda,
        )
        probe = GradProbe()
        trainer = build_trainer(config, len(CLASSES), ctx, loader, hooks=[probe])
        trainer.train()
        result.update(
            steps=trainer.iter,
            grad_max_abs_diff=max(probe.grad_diff),
            grad_max_abs=max(probe.grad_scale),
            loss_spread=probe.loss_spread,
            param_max_abs_diff=_spread(
                torch.cat([p.detach().float().flatten().cpu() for p in trainer.model.parameters()]), ctx
            ),
        )
        shutdown(ctx)
    except Exception as e:
        result["error"] = f"{type(e).__name__}: {e}"[-3000:]
        code = 1
    (out / f"rank-{rank}.json").write_text(json.dumps(result))
    return code


def run_pair(plan: Plan, train_dir: Path, work: Path, backend: str, same_device: bool) -> dict[str, Any]:
    """Two ranks with the environment the container's launcher gives its workers."""
    work.mkdir(parents=True)
    launch = LaunchPlan(("algo-1",), 0, 2, "127.0.0.1", free_port())
    procs = []
    for local in range(2):
        env = worker_env(launch, local)
        if same_device:
            env["LOCAL_RANK"] = "0"  # both ranks on cuda:0
        if backend == "nccl":
            env.setdefault("NCCL_DEBUG", "WARN")  # NCCL's own reason lands in the log tail
        if plan.cpu:
            env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU mode stays on the CPU on a GPU host too
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--ddp-worker",
            str(work),
            "--ddp-backend",
            backend,
            "--data",
            str(train_dir),
            "--plan",
            json.dumps(asdict(plan)),
        ]
        log = open(work / f"rank-{local}.log", "wb")  # noqa: SIM115 - closed below
        procs.append((subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    # NCCL refuses two ranks on one GPU within seconds; that attempt must not eat the budget if it hangs.
    stall = min(60.0, plan.worker_stall_s) if backend == "nccl" and same_device else plan.worker_stall_s
    codes = wait_while_moving([proc for proc, _ in procs], [work / f"rank-{r}.log" for r in range(2)], stall)
    for _, log in procs:
        log.close()
    ranks: list[dict[str, Any]] = []
    for rank in range(2):
        path = work / f"rank-{rank}.json"
        ranks.append(json.loads(path.read_text()) if path.is_file() else {"rank": rank, "error": "no result"})
    result: dict[str, Any] = {"backend": backend, "same_device": same_device, "exit_codes": codes}
    main = ranks[0]
    if all(c == 0 for c in codes) and "error" not in main:
        result.update(
            {
                k: main[k]
                for k in ("device", "steps", "grad_max_abs_diff", "grad_max_abs", "param_max_abs_diff")
            }
        )
        result["devices"] = [r.get("device") for r in ranks]
        result["losses_differ_across_ranks"] = all(s > 0 for s in main["loss_spread"])
        result["ok"] = True
    else:
        errors = [r.get("error") for r in ranks if r.get("error")]
        tail = (
            (work / "rank-0.log").read_text(errors="replace")[-1500:]
            if (work / "rank-0.log").is_file()
            else ""
        )
        result.update(ok=False, errors=errors, log_tail=tail)
    return result


def wait_while_moving(procs: list[subprocess.Popen[bytes]], logs: list[Path], stall_s: float) -> list[int]:
    """Wait for every process; kill them all once none has written to its log for ``stall_s``.

    Progress, not a wall clock: on a busy machine the workers are slow, not stuck.
    """
    sizes: list[int] = []
    moved = time.monotonic()
    while any(p.poll() is None for p in procs):
        now_sizes = [log.stat().st_size if log.is_file() else 0 for log in logs]
        if now_sizes != sizes:
            sizes, moved = now_sizes, time.monotonic()
        elif time.monotonic() - moved > stall_s:
            for p in procs:
                p.kill()
            break
        time.sleep(0.5)
    return [p.wait() for p in procs]


def ddp_section(plan: Plan, train_dir: Path, tmp: Path) -> dict[str, Any]:
    """NCCL over 2 GPUs; on one GPU NCCL is tried (it allows one rank per GPU), then gloo on that GPU."""
    gpus = torch.cuda.device_count() if not plan.cpu else 0
    if gpus >= 2:
        attempts = [("nccl", False)]
    elif gpus == 1:
        attempts = [("nccl", True), ("gloo", True)]
    else:
        attempts = [("gloo", False)]
    runs = [run_pair(plan, train_dir, tmp / f"ddp-{b}-{i}", b, same) for i, (b, same) in enumerate(attempts)]
    ok = [r for r in runs if r["ok"]]
    return {"gpus": gpus, "world_size": 2, "attempts": runs, "checked": ok[-1] if ok else None}


class LossLog(Hook):
    """Every step's loss (kept as tensors; read once at the end)."""

    def __init__(self) -> None:
        self.losses: list[torch.Tensor] = []

    def after_step(self) -> None:
        self.losses.append(self.trainer.last_loss)

    def values(self) -> list[float]:
        return [float(v) for v in self.losses]


def resume_section(plan: Plan, ctx: DistContext, channel: CocoChannel, tmp: Path) -> dict[str, Any]:
    """k steps, checkpoint, a fresh process state resumes for k more: losses == 2k uninterrupted steps."""
    k = plan.resume_steps
    cuda = ctx.device.type == "cuda"
    amp = mixed_amp(ctx.device)
    deterministic = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True

    def run(max_iter: int, start: int, store: CheckpointStore | None) -> list[float]:
        config = make_config(plan, amp=amp, channels_last=cuda, workers=1, max_iter=max_iter)
        loader = build_train_loader(channel, config, rank=0, world=1, start_iter=start, pin_memory=cuda)
        log: LossLog = LossLog()
        hooks: list[Hook] = [log]
        if store is not None:
            hooks.append(CheckpointHook(store, period_iters=10**9, period_minutes=10**6))  # at the end
        trainer: Trainer = build_trainer(config, len(CLASSES), ctx, loader, start_iter=start, hooks=hooks)
        state = store.load_latest() if store is not None and start else None
        if state is not None:
            trainer.load_state_dict(state)
        trainer.train()
        return log.values()

    try:
        reference = run(2 * k, 0, None)
        store = CheckpointStore(tmp / "resume-checkpoints", keep=2)
        first = run(k, 0, store)
        resumed = run(2 * k, k, store)
    finally:
        torch.use_deterministic_algorithms(deterministic[0])
        torch.backends.cudnn.deterministic = deterministic[1]
    got = first + resumed
    diffs = [abs(a - b) for a, b in zip(reference, got, strict=True)]
    return {
        "steps": 2 * k,
        "checkpoint_at": k,
        "amp": amp,
        "checkpoint_written_on": str(ctx.device),
        "losses_uninterrupted": [round(v, 6) for v in reference],
        "losses_resumed": [round(v, 6) for v in got],
        "max_abs_diff": max(diffs),
        "max_rel_diff": max(d / max(abs(r), 1e-12) for d, r in zip(diffs, reference, strict=True)),
        "bitwise_equal": reference == got,
    }


class ProfileHook(Hook):
    """Starts ``profiler`` after ``start_after`` steps and stops it at the end, timing what it saw."""

    def __init__(self, profiler: torch.profiler.profile, start_after: int, device: torch.device) -> None:
        self.profiler, self.start_after, self.device = profiler, start_after, device
        self.wall_s = 0.0
        self._start = 0.0

    def after_step(self) -> None:
        if self.trainer.iter - self.trainer.start_iter == self.start_after:
            sync(self.device)
            self.profiler.start()
            self._start = time.perf_counter()

    def after_train(self) -> None:
        sync(self.device)
        self.wall_s = time.perf_counter() - self._start
        self.profiler.stop()


def profile_section(plan: Plan, ctx: DistContext, channel: CocoChannel) -> dict[str, Any]:
    """torch.profiler over steady pipeline steps (mixed precision, channels_last); one sample's host cost."""
    device = ctx.device
    cuda = device.type == "cuda"
    warm = max(2, plan.warmup // 2)
    workers = min(plan.train_workers, max(1, len(os.sched_getaffinity(0)) - 1))
    config = make_config(
        plan, amp=mixed_amp(device), channels_last=True, workers=workers, max_iter=warm + plan.profile_steps
    )
    activities = [torch.profiler.ProfilerActivity.CPU]
    if cuda:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    profiler = torch.profiler.profile(activities=activities)
    hook = ProfileHook(profiler, warm, device)
    timed = TimedBatches(build_train_loader(channel, config, rank=0, world=1, start_iter=0, pin_memory=cuda))
    trainer = build_trainer(config, len(CLASSES), ctx, timed, hooks=[hook])
    trainer.train()
    averages = profiler.key_averages()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"

    def ms(event: Any, attribute: str) -> float:
        return round(float(getattr(event, attribute, 0.0)) / 1e3, 3)

    ops = [e for e in averages if e.key not in PHASES and not getattr(e, "is_user_annotation", False)]
    top = sorted(ops, key=lambda e: float(getattr(e, key, 0.0)), reverse=True)[:12]
    wall_ms = hook.wall_s * 1e3
    events: list[Any] = profiler.events()  # type: ignore[no-untyped-call]
    kernels = [
        (e.time_range.start, e.time_range.end)
        for e in events
        if e.device_type.name == "CUDA" and not getattr(e, "is_user_annotation", False)
    ]
    in_steps = [
        (e.time_range.start, e.time_range.end)
        for e in events
        if e.name in PHASES and e.device_type.name == "CPU"
    ]
    return {
        "steps": plan.profile_steps,
        "wall_ms": round(wall_ms, 1),
        "sorted_by": key,
        "top_ops": [
            {
                "name": e.key,
                "calls": e.count,
                "self_cpu_ms": ms(e, "self_cpu_time_total"),
                "self_device_ms": ms(e, "self_device_time_total"),
            }
            for e in top
        ],
        "phases": {
            e.key: {"cpu_ms": ms(e, "cpu_time_total"), "device_ms": ms(e, "device_time_total")}
            for e in averages
            if e.key in PHASES
        },
        # GPU: time some kernel ran (overlaps once) over the wall time; host: time inside run_step's phases
        "kernel_time_fraction": round(union_length(kernels) / 1e3 / wall_ms, 4) if cuda and wall_ms else None,
        "host_step_fraction": round(union_length(in_steps) / 1e3 / wall_ms, 4) if wall_ms else None,
        "sample": profile_sample(plan, channel),
    }


def profile_sample(plan: Plan, channel: CocoChannel, n: int = 32) -> dict[str, Any]:
    """cProfile of the loader's per-sample work (cached image -> augmentation -> targets), in this process."""
    loader = build_train_loader(channel, make_config(plan), rank=0, world=1, start_iter=0, pin_memory=False)
    dataset = loader.dataset
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for i in range(n):
        dataset[(i % len(channel.records), i)]
    profiler.disable()
    per_sample_ms = (time.perf_counter() - start) * 1e3 / n
    stats = pstats.Stats(profiler)
    rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:8]  # type: ignore[attr-defined]
    return {
        "samples": n,
        "per_sample_ms": round(per_sample_ms, 3),
        "top_self_time": [
            {
                "function": f"{Path(file).name}:{line}({name})",
                "calls_per_sample": round(row[1] / n, 2),
                "self_ms_per_sample": round(row[2] * 1e3 / n, 4),
            }
            for (file, line, name), row in rows
        ],
    }


# ---------------------------------------------------------------------------------------------------
# Goals and summary


def _check(name: str, value: float | None, goal: str, passed: bool, detail: str) -> dict[str, Any]:
    return {
        "name": name,
        "value": round(value, 4) if value is not None else None,
        "goal": goal,
        "pass": passed,
        "detail": detail,
    }


def _median(row: dict[str, Any], key: str) -> float | None:
    value = row.get(key, {}).get("median")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def evaluate_checks(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The goals and the correctness checks, computed from whatever figures the run has so far."""
    checks = []
    train: dict[str, Any] = data.get("train") or {}
    fp32 = _median(train.get("fp32", {}), "step_images_per_s")
    mixed = {
        name: _median(row, "step_images_per_s")
        for name, row in train.items()
        if row.get("amp") != "none" and not row.get("compile")
    }
    mixed = {k: v for k, v in mixed.items() if v}
    if fp32 and mixed:
        best = max(mixed, key=lambda k: mixed[k] or 0.0)
        ratio = (mixed[best] or 0.0) / fp32
        detail = f"{best} {mixed[best]:.1f} vs fp32 {fp32:.1f} images/s (model step)"
        checks.append(
            _check(
                "mixed_precision_channels_last_vs_fp32",
                ratio,
                f">= {GOAL_MIXED}",
                ratio >= GOAL_MIXED,
                detail,
            )
        )
    steps = {name: v for name, row in train.items() if (v := _median(row, "step_images_per_s"))}
    if steps:
        fastest = max(steps, key=lambda k: steps[k])
        for host, row in (data.get("loader") or {}).items():
            ips = _median(row, "images_per_s") or 0.0
            ratio = ips / steps[fastest]
            detail = (
                f"loader {ips:.1f} images/s ({row['workers']} workers on {row['cores_used']} cores)"
                f" vs step {steps[fastest]:.1f} ({fastest})"
            )
            checks.append(
                _check(
                    f"loader_vs_fastest_step[{host}]",
                    ratio,
                    f">= {GOAL_LOADER}",
                    ratio >= GOAL_LOADER,
                    detail,
                )
            )
    kernel_fraction = (data.get("profile") or {}).get("kernel_time_fraction")
    for name, row in train.items():
        busy = row.get("busy", {})
        value, source = busy.get("value"), busy.get("source", "")
        if value is None and kernel_fraction is not None:
            value, source = kernel_fraction, "profiler kernel time (mixed precision + channels_last)"
        passed = value is not None and value >= GOAL_BUSY
        checks.append(_check(f"busy_in_steady_training[{name}]", value, f">= {GOAL_BUSY}", passed, source))
    ddp = (data.get("ddp") or {}).get("checked")
    if ddp:
        tolerance = GRAD_TOLERANCE * max(ddp["grad_max_abs"], 1e-12)
        passed = ddp["grad_max_abs_diff"] <= tolerance and ddp["param_max_abs_diff"] <= tolerance
        detail = (
            f"{ddp['backend']} over {ddp['devices']}, {ddp['steps']} steps;"
            f" ranks saw different data: {ddp['losses_differ_across_ranks']}"
        )
        checks.append(
            _check("ddp_gradients_agree", ddp["grad_max_abs_diff"], f"<= {tolerance:.3g}", passed, detail)
        )
    elif "ddp" in data:
        checks.append(_check("ddp_gradients_agree", None, "two ranks train", False, "no attempt succeeded"))
    resume = data.get("resume")
    if resume:
        passed = resume["max_rel_diff"] <= RESUME_TOLERANCE
        detail = (
            f"{resume['steps']} steps, checkpoint at {resume['checkpoint_at']},"
            f" bitwise equal: {resume['bitwise_equal']}"
        )
        checks.append(
            _check("resume_same_losses", resume["max_rel_diff"], f"<= {RESUME_TOLERANCE}", passed, detail)
        )
    return checks


def summarise(data: dict[str, Any]) -> str:
    """A few lines for people: versions, the figures, the checks."""
    env = data.get("environment") or {}
    lines = [
        f"spotline GPU check ({data['mode']} mode, {data.get('wall_s')} s): {env.get('device')};"
        f" torch {env.get('torch')}, CUDA {env.get('torch_cuda_build')}, cuDNN {env.get('cudnn')},"
        f" NCCL {env.get('nccl')}"
    ]
    plan = data["plan"]
    lines.append(
        f"input {plan['size']} px, batch {plan['batch']}, depth {plan['depth']}, width {plan['width']}; "
        f"medians of {plan['windows']} windows"
    )
    train = data.get("train") or {}
    if train:
        lines.append(
            f"{'train images/s':<34}{'step':>10}{'pipeline':>10}{'busy':>8}{'syncs':>7}{'peak MiB':>10}"
        )
    for name, row in train.items():
        busy = row.get("busy", {}).get("value")
        step, pipeline = _median(row, "step_images_per_s"), _median(row, "pipeline_images_per_s")
        lines.append(
            f"  {name:<32}{_fmt(step):>10}{_fmt(pipeline):>10}"
            f"{_fmt(busy * 100 if busy is not None else None, '%'):>8}"
            f"{_fmt(row.get('host_syncs_per_step')):>7}{_fmt(row.get('peak_memory_mib')):>10}"
        )
    for host, row in (data.get("loader") or {}).items():
        lines.append(
            f"loader {host} ({row['workers']} workers, {row['cores_used']} cores): "
            f"{_fmt(_median(row, 'images_per_s'))} images/s"
        )
    infer = data.get("inference") or {}
    if infer:
        parts = [
            f"{amp} {_fmt(_median(infer[amp], 'model_images_per_s'))}"
            for amp in ("fp16", "bf16")
            if "model_images_per_s" in infer.get(amp, {})
        ]
        e2e = infer.get("end_to_end", {})
        lines.append(
            f"inference images/s: model {', '.join(parts)};"
            f" end to end ({e2e.get('amp')}) {_fmt(_median(e2e, 'images_per_s'))}"
        )
    ddp = (data.get("ddp") or {}).get("checked")
    if ddp:
        lines.append(
            f"ddp: {ddp['backend']} on {ddp['devices']}: gradients max |diff| {ddp['grad_max_abs_diff']:.3g}"
        )
    for attempt in (data.get("ddp") or {}).get("attempts", []):
        if not attempt["ok"]:
            lines.append(f"ddp: {attempt['backend']} failed: {(attempt.get('errors') or ['?'])[0][:200]}")
    resume = data.get("resume")
    if resume:
        lines.append(
            f"resume: max |loss diff| {resume['max_abs_diff']:.3g} (bitwise equal: {resume['bitwise_equal']})"
        )
    profile = data.get("profile") or {}
    if profile:
        ops = ", ".join(
            f"{op['name']} {op['self_device_ms'] or op['self_cpu_ms']} ms" for op in profile["top_ops"][:5]
        )
        lines.append(f"profile ({profile['steps']} steps, {profile['wall_ms']} ms): {ops}")
        lines.append(f"one training sample on the host: {profile['sample']['per_sample_ms']} ms")
    for check in data.get("checks", []):
        verdict = "PASS" if check["pass"] else "FAIL"
        lines.append(
            f"{verdict} {check['name']}: {check['value']} (goal {check['goal']}) - {check['detail']}"
        )
    for name, text in data.get("errors", {}).items():
        lines.append(f"ERROR in {name}: {text.splitlines()[0]}")
    for name, text in data.get("skipped", {}).items():
        lines.append(f"skipped {name}: {text}")
    return "\n".join(lines) + "\n"


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.1f}{unit}"


# ---------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cpu", action="store_true", help="CPU stand-ins and small sizes (what make test runs)"
    )
    parser.add_argument("--out", type=Path, help="the JSON to write (a .txt summary lands beside it)")
    for field in fields(Plan):
        if field.name != "cpu":
            flag = "--" + field.name.replace("_", "-")
            parser.add_argument(flag, type=str if field.name == "compile_backend" else float, default=None)
    parser.add_argument("--ddp-worker", help=argparse.SUPPRESS)
    parser.add_argument("--ddp-backend", help=argparse.SUPPRESS)
    parser.add_argument(
        "--variants", help=f"train only these, comma-separated (of {', '.join(v[0] for v in VARIANTS)})"
    )
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def plan_from_args(args: argparse.Namespace) -> Plan:
    plan = reference_plan(args.cpu)
    changes: dict[str, Any] = {}
    for field in fields(Plan):
        value = getattr(args, field.name, None)
        if field.name != "cpu" and value is not None:
            changes[field.name] = (
                value if field.name == "compile_backend" else type(getattr(plan, field.name))(value)
            )
    return replace(plan, **changes)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.ddp_worker:
        return ddp_worker(args)
    if not args.cpu and not torch.cuda.is_available():
        print("no CUDA device: run with --cpu for the CPU mode", file=sys.stderr)
        return 2
    plan = plan_from_args(args)
    device = torch.device("cpu") if plan.cpu else torch.device("cuda", 0)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    out = args.out or ROOT / "benchmarks" / "results" / f"{'cpu' if plan.cpu else 'gpu'}-{stamp}.json"
    report = Report(out, plan, device)
    only = set(args.variants.split(",")) if args.variants else None
    ctx = DistContext(0, 1, 0, device)
    with tempfile.TemporaryDirectory(prefix="spotline-gpu-check-") as name:
        tmp = Path(name)
        report.section("environment", 0, lambda: environment(device))
        data = make_data(plan, tmp)
        channel = load_coco_channel(data["train"])
        report.section(
            "train", 30 * (0.1 if plan.cpu else 1), lambda: train_section(plan, ctx, channel, report, only)
        )
        report.section("loader", 20 * (0.1 if plan.cpu else 1), lambda: loader_section(plan, channel, device))
        report.section("profile", 20 * (0.1 if plan.cpu else 1), lambda: profile_section(plan, ctx, channel))
        report.section(
            "inference", 20 * (0.1 if plan.cpu else 1), lambda: inference_section(plan, ctx, data, tmp)
        )
        report.section(
            "resume", 20 * (0.1 if plan.cpu else 1), lambda: resume_section(plan, ctx, channel, tmp)
        )
        report.section("ddp", 60 * (0.2 if plan.cpu else 1), lambda: ddp_section(plan, data["train"], tmp))
    print(report.finish(), end="")
    print(f"written: {out} and {out.with_suffix('.txt')}")
    return 1 if report.data["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
