"""Throughput benchmark of the container's pieces, side by side in one run (CPU, or CUDA when present).

1. training images/s, whole pipeline (loader + step): fp32 vs mixed precision + channels_last;
2. the data loader alone vs the model step alone (the loader must outpace the step);
3. inference images/s (batched; mixed precision on CUDA).

``python benchmarks/bench_container_throughput.py [--size 128] [--batch 16] [--steps 20] [--workers 1]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / p) for p in ("container", "functions")]

import torch  # noqa: E402

from spotline.config import RunConfig, parse_run_config  # noqa: E402
from spotline_container.data import build_image_loader, build_train_loader, list_images, load_coco_channel  # noqa: E402
from spotline_container.distributed import DistContext  # noqa: E402
from spotline_container.model import CenterNet, normalize  # noqa: E402
from spotline_container.postprocess import decode  # noqa: E402
from spotline_container.precision import autocast, grad_scaler  # noqa: E402
from spotline_container.signals import StopRequest  # noqa: E402
from spotline_container.solver import build_optimizer, build_scheduler  # noqa: E402
from spotline_container.synthetic import generate_dataset  # noqa: E402
from spotline_container.trainer import Trainer  # noqa: E402


def make_config(args: argparse.Namespace, amp: str, channels_last: bool) -> RunConfig:
    overrides = {
        "model.depth": str(args.depth),
        "model.width": str(args.width),
        "model.head_width": str(args.width * 2),
        "input.size": str(args.size),
        "dataloader.num_workers": str(args.workers),
        "solver.batch_size": str(args.batch),
        "solver.max_iter": "100000",
        "solver.warmup_iters": "0",
        "solver.amp": amp,
        "solver.channels_last": str(channels_last).lower(),
    }
    return parse_run_config("job: {channels: {train: datasets/rail/train}}\n", overrides=overrides)


def make_trainer(config: RunConfig, ctx: DistContext, data: Iterator[dict[str, torch.Tensor]]) -> Trainer:
    torch.manual_seed(0)
    model = CenterNet.from_config(config, 3).to(ctx.device)
    if config.solver.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = build_optimizer(model, config.solver)
    return Trainer(
        model=model,
        train_model=model,
        optimizer=optimizer,
        scheduler=build_scheduler(optimizer, config.solver),
        scaler=grad_scaler(config.solver.amp, ctx.device),
        data=data,
        ctx=ctx,
        amp=config.solver.amp,
        channels_last=config.solver.channels_last,
        clip_grad_norm=None,
        start_iter=0,
        max_iter=100000,
        hooks=[],
        stop=StopRequest(),
        data_state={},
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--depth", type=int, default=1)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--images", type=int, default=256)
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ctx = DistContext(0, 1, 0, device)
    mixed = "bf16" if device.type == "cpu" or torch.cuda.is_bf16_supported() else "fp16"
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"device: {name}; input {args.size} px, batch {args.batch}, depth {args.depth}, width {args.width}")

    with tempfile.TemporaryDirectory(prefix="spotline-tput-") as tmp:
        data = generate_dataset(Path(tmp), args.images, 0, args.images, seed=0, image_size=args.size)
        channel = load_coco_channel(data["train"])
        n = args.warmup + args.steps
        rows: list[tuple[str, float]] = []

        fp32 = make_config(args, "none", False)
        t0 = time.perf_counter()
        loader = build_train_loader(
            channel, fp32, rank=0, world=1, start_iter=0, pin_memory=device.type == "cuda"
        )
        cache_s = time.perf_counter() - t0
        batches = iter(loader)
        for _ in range(args.warmup):
            next(batches)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            next(batches)
        loader_ips = args.steps * args.batch / (time.perf_counter() - t0)
        del batches
        sample = next(iter(loader))

        for label, amp, cl in (("fp32", "none", False), (f"{mixed} + channels_last", mixed, True)):
            config = make_config(args, amp, cl)
            # the model step alone: the same batch, already in memory
            trainer = make_trainer(config, ctx, iter(()))
            for i in range(n):
                if i == args.warmup:
                    sync(device)
                    t0 = time.perf_counter()
                trainer.run_step(sample)
            sync(device)
            step_ips = args.steps * args.batch / (time.perf_counter() - t0)
            # the whole pipeline: loader + step
            live = iter(
                build_train_loader(
                    channel, config, rank=0, world=1, start_iter=0, pin_memory=device.type == "cuda"
                )
            )
            trainer = make_trainer(config, ctx, live)
            for i in range(n):
                if i == args.warmup:
                    sync(device)
                    t0 = time.perf_counter()
                trainer.run_step(next(live))
            sync(device)
            rows.append((f"train {label}: pipeline", args.steps * args.batch / (time.perf_counter() - t0)))
            rows.append((f"train {label}: model step alone", step_ips))
            del live

        rows.append((f"data loader alone ({args.workers} worker(s), cached, augmented, targets)", loader_ips))

        model = CenterNet.from_config(fp32, 3).to(device).eval()
        infer_amp = mixed if device.type == "cuda" else "none"
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        paths = list_images(data["unlabelled"])
        image_loader = build_image_loader(
            paths,
            [p.name for p in paths],
            args.size,
            args.batch,
            args.workers,
            pin_memory=device.type == "cuda",
        )
        with torch.no_grad():
            for rounds in range(2):  # the first round warms up
                count = 0
                sync(device)
                t0 = time.perf_counter()
                for batch in image_loader:
                    images = normalize(batch["image"].to(device), device.type == "cuda")
                    with autocast(infer_amp, device):
                        decode(model(images), 100)
                    count += len(batch["key"])
                sync(device)
                if rounds:
                    rows.append(
                        (f"inference ({infer_amp}; jpeg decoding incl.)", count / (time.perf_counter() - t0))
                    )

    print(f"image cache: {args.images} images decoded and resized in {cache_s:.2f} s")
    width = max(len(label) for label, _ in rows)
    for label, ips in rows:
        print(f"{label:<{width}}  {ips:8.1f} images/s")
    step_fp32 = rows[1][1]
    verdict = "the loader keeps up" if loader_ips >= step_fp32 else "the LOADER IS THE BOTTLENECK"
    print(f"loader / fp32 step = {loader_ips / step_fp32:.1f}x: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
