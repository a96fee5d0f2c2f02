"""Training speed on a busy machine: the demo's run with other CPU-bound work on the same cores.

The container trains the demo's detector (128 px, batch 16, depth 1, width 16) through the real runner
on a temporary ``/opt/ml``, once per thread setting, first on an idle machine and then with
``--burners`` CPU-bound processes beside it. Each figure is the median of the container's own
``train/images_per_s`` log windows; the variants take turns over ``--rounds`` rounds (the medians over
rounds are printed), so a change in the machine's other load hits every variant alike. What it shows:
how many threads and which OpenMP wait policy keep a job fast when the cores it was given are not free.

``python benchmarks/bench_busy_machine.py [--iters 60] [--burners 2] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / p) for p in ("container", "functions")]

from spotline_container.sagemaker_tree import make_tree, start  # noqa: E402
from spotline_container.synthetic import generate_dataset  # noqa: E402

CONFIG = """
job:
  channels: {{train: datasets/rail/train}}
model: {{depth: 1, width: 16, head_width: 32}}
input: {{size: 128}}
dataloader: {{num_workers: 0}}
solver:
  {{optimizer: adamw, batch_size: 16, base_lr: 0.002, max_iter: {iters}, warmup_iters: 10, log_period: 10}}
checkpoint: {{period_iters: 100000, period_minutes: 60}}
"""
# (label, environment of the container): what the local stack can set for a job.
VARIANTS: list[tuple[str, dict[str, str]]] = [
    # torch's defaults on this machine (what a dedicated instance gets): a thread per core, spinning.
    ("2 threads, OpenMP default (spin)", {"SPOTLINE_TORCH_THREADS": "2", "OMP_WAIT_POLICY": "ACTIVE"}),
    (
        "2 threads, OMP_WAIT_POLICY=PASSIVE",
        {"SPOTLINE_TORCH_THREADS": "2", "OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
    ),
    (
        "1 thread, OMP_WAIT_POLICY=PASSIVE",
        {"SPOTLINE_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"},
    ),
    ("SPOTLINE_TORCH_THREADS=auto (local stack)", {"SPOTLINE_TORCH_THREADS": "auto"}),
]
_SPEED = re.compile(r"#metric train/images_per_s=(\S+)")


def burn(stop_at: float) -> None:
    """A CPU-bound process: the other jobs of a shared machine."""
    x = 0
    while time.time() < stop_at:
        x = (x * 1103515245 + 12345) % 2**31


@contextlib.contextmanager
def burning(count: int) -> Iterator[None]:
    """``count`` CPU-bound processes for the duration of the block."""
    ctx = multiprocessing.get_context("spawn")
    burners = [ctx.Process(target=burn, args=(time.time() + 3600,), daemon=True) for _ in range(count)]
    for b in burners:
        b.start()
    try:
        time.sleep(1.0)
        yield
    finally:
        for b in burners:
            b.terminate()
            b.join()


def images_per_s(base: Path, env: dict[str, str]) -> tuple[float, float]:
    """(median images/s of the log windows, wall seconds of the whole run)."""
    for stale in ("checkpoints", "model", "output"):
        for path in sorted((base / stale).rglob("*"), reverse=True) if (base / stale).exists() else []:
            path.unlink() if path.is_file() else path.rmdir()
    t0 = time.perf_counter()
    proc = start(base, extra_env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"the container failed:\n{out[-3000:]}")
    speeds = [float(v) for v in _SPEED.findall(out)][1:]  # the first window includes warm-up
    return statistics.median(speeds), wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--burners", type=int, default=2, help="CPU-bound processes beside the job")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    for name in [n for n in os.environ if n.startswith(("OMP_", "KMP_", "MKL_", "SPOTLINE_"))]:
        del os.environ[name]  # every variant starts from the same environment
    with tempfile.TemporaryDirectory(prefix="spotline-busy-") as tmp:
        root = Path(tmp)
        data = generate_dataset(root / "data", 160, 0, 0, seed=0, image_size=128)
        base = make_tree(
            root / "ml", config_yaml=CONFIG.format(iters=args.iters), channels={"train": data["train"]}
        )
        idle: dict[str, list[float]] = {label: [] for label, _ in VARIANTS}
        busy: dict[str, list[float]] = {label: [] for label, _ in VARIANTS}
        for _ in range(args.rounds):
            for label, env in VARIANTS:
                idle[label].append(images_per_s(base, env)[0])
            with burning(args.burners):
                for label, env in VARIANTS:
                    busy[label].append(images_per_s(base, env)[0])
    print(
        f"{cores} cores; busy = {args.burners} CPU-bound processes beside the job; {args.iters} iterations; "
        f"medians of {args.rounds} rounds (load average at the end: {os.getloadavg()[0]:.1f})"
    )
    spin = statistics.median(busy[VARIANTS[0][0]])
    header = ("threads of the job", "idle img/s", "busy img/s", "busy/idle", "busy vs spin")
    print(f"{header[0]:42} {header[1]:>10} {header[2]:>10} {header[3]:>9} {header[4]:>12}")
    for label, _ in VARIANTS:
        i, b = statistics.median(idle[label]), statistics.median(busy[label])
        print(f"{label:42} {i:10.1f} {b:10.1f} {b / i:9.2f} {b / spin:11.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
