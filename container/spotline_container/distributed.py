"""Data-parallel over every GPU of every host: the launch plan, the per-host launcher, the process group.

PID 1 on each host reads the resource config and, when the job spans more than one process, starts one
worker per GPU (``python -m spotline_container train`` again, with RANK/WORLD_SIZE/... set), forwards
SIGTERM to them and reports the first failure. Rendezvous is on the first host (sorted names, as the
toolkit does). A single process (one GPU, or CPU) runs without DDP.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import torch
import torch.distributed as dist

from spotline_container.env import SageMakerEnvironment
from spotline_toolkit.stopping import SIGTERM_EXIT_CODE

log = logging.getLogger(__name__)
T = TypeVar("T")

NPROC_ENV = "SPOTLINE_NPROC_PER_HOST"
PORT_ENV = "SPOTLINE_MASTER_PORT"
WORKER_FAILURE_ENV = "SPOTLINE_WORKER_FAILURE_FILE"
DEFAULT_PORT = 29500
KILL_AFTER_S = 30.0


@dataclass(frozen=True)
class LaunchPlan:
    hosts: tuple[str, ...]
    node_rank: int
    nproc_per_host: int
    master_addr: str
    master_port: int
    network_interface: str | None = None

    @property
    def world_size(self) -> int:
        return len(self.hosts) * self.nproc_per_host


def plan_launch(env: SageMakerEnvironment) -> LaunchPlan:
    hosts = env.sorted_hosts
    nproc = int(os.environ.get(NPROC_ENV) or 0) or max(1, torch.cuda.device_count())
    master = "127.0.0.1" if len(hosts) == 1 else hosts[0]
    port = int(os.environ.get(PORT_ENV) or DEFAULT_PORT)
    return LaunchPlan(hosts, hosts.index(env.current_host), nproc, master, port, env.network_interface)


def in_worker() -> bool:
    """True in a process started by :func:`launch_workers` (or any launcher that sets RANK)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def worker_env(plan: LaunchPlan, local: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of this host's worker ``local``: ``base`` (default: ours) plus its place in the job."""
    env = dict(os.environ if base is None else base)
    env.update(
        RANK=str(plan.node_rank * plan.nproc_per_host + local),
        LOCAL_RANK=str(local),
        WORLD_SIZE=str(plan.world_size),
        LOCAL_WORLD_SIZE=str(plan.nproc_per_host),
        MASTER_ADDR=plan.master_addr,
        MASTER_PORT=str(plan.master_port),
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS")
        or str(max(1, (os.cpu_count() or 1) // plan.nproc_per_host)),
    )
    if plan.network_interface and len(plan.hosts) > 1:
        env.setdefault("NCCL_SOCKET_IFNAME", plan.network_interface)
        env.setdefault("GLOO_SOCKET_IFNAME", plan.network_interface)
    return env


def launch_workers(plan: LaunchPlan, argv: list[str]) -> tuple[int, str | None]:
    """Run this host's workers to the end: ``(exit code, the first failing worker's failure text)``."""
    failure_dir = Path(tempfile.mkdtemp(prefix="spotline-workers-"))
    procs: list[subprocess.Popen[bytes]] = []
    for local in range(plan.nproc_per_host):
        env = worker_env(plan, local)
        env[WORKER_FAILURE_ENV] = str(failure_dir / f"rank-{env['RANK']}")
        procs.append(subprocess.Popen([sys.executable, "-m", "spotline_container", *argv], env=env))  # noqa: S603
    log.info(
        "started %d workers (ranks %d..%d of %d)",
        len(procs),
        plan.node_rank * plan.nproc_per_host,
        (plan.node_rank + 1) * plan.nproc_per_host - 1,
        plan.world_size,
    )

    stopping = False

    def forward(signum: int, frame: types.FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        first_bad: int | None = None
        deadline: float | None = None
        while any(p.poll() is None for p in procs):
            for p in procs:
                code = p.poll()
                if code not in (None, 0) and first_bad is None:
                    first_bad = code
                    if not stopping:
                        log.error("a worker exited with %s; stopping the others", code)
                        forward(signal.SIGTERM, None)
                        stopping = True
                    deadline = time.monotonic() + KILL_AFTER_S
            if deadline is not None and time.monotonic() > deadline:
                for p in procs:
                    if p.poll() is None:
                        p.kill()
            time.sleep(0.2)
        codes = [p.returncode for p in procs]
    finally:
        signal.signal(signal.SIGTERM, previous)
    failures = sorted(failure_dir.glob("rank-*"))
    text = failures[0].read_text() if failures else None
    if all(c == 0 for c in codes):
        return 0, None
    if text is None and all(c in (0, SIGTERM_EXIT_CODE) for c in codes):
        return SIGTERM_EXIT_CODE, None
    return next(c for c in codes if c != 0), text


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    # A gloo group for host-side agreement (the stop flag): a CPU tensor through it never waits on the GPU.
    host_group: dist.ProcessGroup | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_process_group() -> DistContext:
    """Join the process group this worker was started for (a no-op for a single process)."""
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world <= 1:
        return DistContext(rank, world, local, device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=timedelta(minutes=30))
    return DistContext(rank, world, local, device, dist.new_group(backend="gloo"))


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True if ``flag`` is true on any rank: all ranks stop at the same step.

    Asked before every step, so it goes through the host group on the CPU: the same question on the
    GPU (a tensor made there, ``all_reduce``, ``.item()``) would drain the GPU's queue twice per step.
    """
    if not ctx.distributed:
        return flag
    t = torch.tensor([1 if flag else 0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=ctx.host_group)
    return bool(t.item())


def gather_to_main(obj: T, ctx: DistContext) -> list[T]:
    """Every rank's ``obj``, on rank 0 (other ranks get an empty list)."""
    if not ctx.distributed:
        return [obj]
    gathered: list[T] | None = [obj] * ctx.world_size if ctx.is_main else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered or []


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
