"""Quality benchmark: train the detector on synthetic rail-track images through the real runner, on CPU.

Prints the validation mAP@0.5 and mAP@[.5:.95] reached and the time it took; fails (exit 1) below the
bar. ``python benchmarks/bench_detector_quality.py [--max-iter N] [--min-map50 0.6]``
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / p) for p in ("container", "functions")]

from spotline_container.sagemaker_tree import make_tree, start  # noqa: E402
from spotline_container.synthetic import generate_dataset  # noqa: E402

CONFIG = """
job:
  channels: {{train: datasets/rail/train, val: datasets/rail/val}}
model: {{depth: 1, width: 16, head_width: 32}}
input: {{size: 128}}
dataloader: {{num_workers: {workers}}}
solver:
  optimizer: adamw
  batch_size: 16
  base_lr: 0.002
  weight_decay: 0.0001
  max_iter: {max_iter}
  warmup_iters: 30
  steps: [{step}]
  log_period: 50
augment: {{hflip: 0.5, vflip: 0.5, brightness: 0.15, contrast: 0.15, scale: [0.9, 1.1]}}
checkpoint: {{period_iters: 100000, period_minutes: 60}}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-iter", type=int, default=1000)
    parser.add_argument("--train-images", type=int, default=800)
    parser.add_argument("--val-images", type=int, default=100)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--min-map50", type=float, default=0.6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spotline-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        data = generate_dataset(root / "data", args.train_images, args.val_images, 0, seed=0, image_size=128)
        gen_s = time.perf_counter() - t0
        config = CONFIG.format(max_iter=args.max_iter, step=int(args.max_iter * 0.8), workers=args.workers)
        base = make_tree(
            root / "ml", config_yaml=config, channels={"train": data["train"], "val": data["val"]}
        )
        t1 = time.perf_counter()
        proc = start(base, stdout=subprocess.PIPE)
        out, _ = proc.communicate()
        train_s = time.perf_counter() - t1
        if proc.returncode != 0:
            print(out)
            print((base / "output" / "failure").read_text() if (base / "output" / "failure").exists() else "")
            return 1
        metrics = json.loads((base / "model" / "metrics.json").read_text())
        losses = re.findall(r"#metric train/loss=(\S+) step=(\d+)", out)
        speeds = [float(v) for v in re.findall(r"#metric train/images_per_s=(\S+)", out)]
    print(
        f"synthetic data: {args.train_images} train / {args.val_images} val images at 128 px in {gen_s:.1f} s"
    )
    print("loss: " + ", ".join(f"{float(v):.2f}@{s}" for v, s in losses))
    print(f"training: {args.max_iter} iterations x 16 images in {train_s:.1f} s (whole run, start-up incl.)")
    print(f"train images/s (median of log windows): {sorted(speeds)[len(speeds) // 2]:.1f}")
    print(f"val mAP@0.5 = {metrics['mAP50']:.3f}   mAP@[.5:.95] = {metrics['mAP']:.3f}")
    ok = metrics["mAP50"] >= args.min_map50
    print(f"{'PASS' if ok else 'FAIL'}: mAP@0.5 {'>=' if ok else '<'} {args.min_map50}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
