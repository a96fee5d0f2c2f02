"""Tuning strategies compared on CPU: random search vs Bayesian (the local tuner's TPE) on one budget.

Each trial is a real training run of the container (``python -m spotline_container train`` on a
temporary ``/opt/ml``) on the same small synthetic rail dataset, with the hyperparameters the
strategy proposes. The objective is the trial's last ``train/loss`` (the mean over its last log
window), minimized: at a budget this small every trial's validation mAP is still near 0 and would
tell the strategies nothing. Both strategies get the same budget of trials, run one at a time (each
proposal hears every earlier result), over the same ranges, with the local tuner's own code
(:mod:`spotline_local.sagemaker.search`); the best objective each found is printed per seed and as
the median over the seeds, with the ratio Bayesian / random.

``python benchmarks/bench_tuning_strategies.py [--trials 8] [--seeds 3] [--max-iter 60]``
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / p) for p in ("container", "functions", "local")]

from spotline_container.sagemaker_tree import make_tree, start  # noqa: E402
from spotline_container.synthetic import generate_dataset  # noqa: E402
from spotline_local.sagemaker.search import Search, search_for, space  # noqa: E402

CONFIG = """
job:
  channels: {{train: datasets/rail/train}}
model: {{depth: 1, head_width: 16}}
input: {{size: 64}}
dataloader: {{num_workers: 0}}
solver: {{optimizer: adamw, batch_size: 8, max_iter: {max_iter}, warmup_iters: 5, log_period: 20}}
checkpoint: {{period_iters: 100000, period_minutes: 60}}
"""
# What a tuning: section with these ranges becomes (spotline.domain.tuning_requests.parameter_ranges).
RANGES = {
    "ContinuousParameterRanges": [
        {"Name": "solver.base_lr", "MinValue": "0.0001", "MaxValue": "0.1", "ScalingType": "Logarithmic"},
        {
            "Name": "solver.weight_decay",
            "MinValue": "0.00001",
            "MaxValue": "0.1",
            "ScalingType": "Logarithmic",
        },
    ],
    "CategoricalParameterRanges": [{"Name": "model.width", "Values": ["8", "12", "16"]}],
}
STRATEGIES = ("Random", "Bayesian")
LOSS_LINE = re.compile(r"#metric train/loss=(\S+) step=(\d+)")


def trial(root: Path, data: dict[str, Path], config: str, hyperparameters: dict[str, str]) -> float | None:
    """One training run with ``hyperparameters``: its last train/loss (None if it failed or diverged)."""
    base = make_tree(
        root, config_yaml=config, channels={"train": data["train"]}, hyperparameters=hyperparameters
    )
    proc = start(base, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = proc.communicate()
    losses = [float(v) for v, _ in LOSS_LINE.findall(out or "")]
    if proc.returncode != 0 or not losses or not math.isfinite(losses[-1]):
        return None
    return losses[-1]


def run_search(
    strategy: str, seed: int, trials: int, root: Path, data: dict[str, Path], config: str
) -> tuple[float, list[float]]:
    """The best objective ``strategy`` found in ``trials`` trials, and every trial's objective."""
    proposer: Search = search_for(strategy, space(RANGES), seed, maximize=False, budget=trials)
    found: list[float] = []
    for i in range(trials):
        proposal = proposer.ask()
        if proposal is None:
            break
        ticket, hyperparameters = proposal
        value = trial(root / f"{strategy}-{seed}-{i}", data, config, hyperparameters)
        proposer.tell(ticket, value)
        found.append(value if value is not None else math.inf)
    return min(found), found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-iter", type=int, default=60)
    parser.add_argument("--train-images", type=int, default=96)
    args = parser.parse_args()
    config = CONFIG.format(max_iter=args.max_iter)
    best: dict[str, list[float]] = {s: [] for s in STRATEGIES}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="spotline-bench-tuning-") as tmp:
        root = Path(tmp)
        data = generate_dataset(root / "data", args.train_images, 0, 0, seed=0, image_size=64)
        print(
            f"{args.trials} trials per search, {args.seeds} seeds; each trial {args.max_iter} steps on "
            f"{args.train_images} synthetic images at 64 px; objective train/loss (minimize)"
        )
        for seed in range(args.seeds):
            for strategy, values in best.items():
                value, curve = run_search(strategy, seed, args.trials, root, data, config)
                values.append(value)
                shown = " ".join(f"{v:.3f}" for v in curve)
                print(f"seed {seed} {strategy:8s} best {value:.3f}  trials {shown}", flush=True)
    random_median = statistics.median(best["Random"])
    bayesian_median = statistics.median(best["Bayesian"])
    ratio = bayesian_median / random_median if random_median > 0 else math.inf
    winner = "bayesian" if bayesian_median < random_median else "random"
    print(f"median best train/loss: random {random_median:.3f}, bayesian (TPE) {bayesian_median:.3f}")
    print(f"ratio bayesian / random: {ratio:.2f} (lower is better): {winner} found the better model")
    print(f"{time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
