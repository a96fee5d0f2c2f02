"""Inference mode: a trained ``model.tar.gz`` and a folder (or manifest) of images in, JSON lines out.

Work is cut into shards of ``inference.shard_size`` images. A finished shard's predictions and its
done-marker go to the checkpoint directory (synced to S3 by SageMaker), so a relaunched job redoes
only the shards it had not finished. At the end the shards are merged into ``predictions.jsonl`` and
``summary.json`` under the model directory, which SageMaker uploads as the job's ``model.tar.gz``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from spotline.config import RunConfig
from spotline.config.model import ModelSection
from spotline.metric_names import INFER_THROUGHPUT
from spotline_container.data import build_image_loader, list_images
from spotline_container.distributed import DistContext, barrier, gather_to_main
from spotline_container.env import SageMakerEnvironment
from spotline_container.hooks import emit
from spotline_container.model import CenterNet, normalize
from spotline_container.postprocess import decode, to_original
from spotline_container.precision import autocast, check_amp
from spotline_container.train import MODEL_FILE
from spotline_toolkit.checkpoints import atomic_write, atomic_write_bytes
from spotline_toolkit.failures import Interrupted, UserError

log = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.jsonl"
SUMMARY_FILE = "summary.json"
SHARD_DIR = "inference"


def open_model_channel(env: SageMakerEnvironment) -> Path:
    """The directory holding ``model.pt`` and ``config.yaml``: the channel itself or its extracted archive."""
    channel = env.channel_dir("model")
    if not channel.is_dir():
        raise UserError("missing channel 'model' (a training run's model.tar.gz)")
    if (channel / MODEL_FILE).is_file():
        return channel
    archives = sorted(channel.rglob("*.tar.gz"))
    if len(archives) != 1:
        raise UserError(f"the model channel must hold one model.tar.gz (found {len(archives)})")
    out = Path(tempfile.mkdtemp(prefix="spotline-model-"))
    try:
        with tarfile.open(archives[0]) as tar:
            tar.extractall(out, filter="data")
    except (tarfile.TarError, OSError) as e:
        raise UserError(f"cannot extract {archives[0].name}: {e}") from e
    if not (out / MODEL_FILE).is_file():
        raise UserError(
            f"{archives[0].name} has no {MODEL_FILE}: is it the output of a spotline training run?"
        )
    return out


def _schema(name: str) -> Mapping[str, Any]:
    """The config schema's rules of ``model.<name>`` (what a training run can have built)."""
    return next(f.metadata for f in dataclasses.fields(ModelSection) if f.name == name)


def _checked_payload(payload: Any) -> tuple[dict[str, int], tuple[str, ...], int]:
    """``(CenterNet kwargs, classes, input size)`` of a model file; ValueError saying what is odd."""
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        raise ValueError(f"holds a {type(payload).__name__}, not a spotline model")
    kwargs, classes, size = payload.get("kwargs"), payload.get("classes"), payload.get("input_size", 0)
    if not isinstance(kwargs, dict) or set(kwargs) != {"num_classes", "depth", "width", "head_width"}:
        raise ValueError(f"kwargs is {kwargs!r}, expected num_classes, depth, width and head_width")
    limits = {"num_classes": (1, int(_schema("classes")["max_items"]))}
    for name in ("depth", "width", "head_width"):
        limits[name] = (int(_schema(name)["min"]), int(_schema(name)["max"]))
    for key, (low, high) in limits.items():
        value = kwargs[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{key} is {value!r}, expected a whole number from {low} to {high}")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"classes is {classes!r}, expected a list of names")
    if len(classes) != kwargs["num_classes"]:
        raise ValueError(f"{len(classes)} classes for a model of {kwargs['num_classes']}")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= 4096:
        raise ValueError(f"input_size is {size!r}, expected a whole number of pixels")
    return dict(kwargs), tuple(classes), size


def load_model(model_dir: Path, device: torch.device) -> tuple[CenterNet, tuple[str, ...], int]:
    try:
        payload = torch.load(model_dir / MODEL_FILE, map_location="cpu", weights_only=True)
        kwargs, classes, size = _checked_payload(payload)
        model = CenterNet(**kwargs)
        model.load_state_dict(payload["model"])
    except Exception as e:  # any unreadable model is the input's fault, not the platform's
        raise UserError(f"cannot load {MODEL_FILE}: {type(e).__name__}: {e}") from e
    return model.to(device).eval(), classes, size


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@torch.no_grad()
def _predict_shard(
    model: CenterNet,
    paths: list[Path],
    *,
    keys: list[str],
    classes: tuple[str, ...],
    size: int,
    config: RunConfig,
    ctx: DistContext,
    should_stop: Any,
) -> list[dict[str, Any]]:
    cfg = config.inference
    amp = cfg.amp if ctx.device.type == "cuda" else "none"
    channels_last = ctx.device.type == "cuda"
    loader = build_image_loader(
        paths, keys, size, cfg.batch_size, cfg.num_workers, pin_memory=channels_last, tolerate_errors=True
    )
    lines: list[dict[str, Any]] = []
    for batch in loader:
        if should_stop():
            raise Interrupted("stopped during inference")
        images = normalize(batch["image"].to(ctx.device, non_blocking=True), channels_last)
        with autocast(amp, ctx.device):
            outputs = model(images)
        dets = decode(outputs, config.model.max_detections)
        for i, key in enumerate(batch["key"]):
            if batch["error"][i]:
                lines.append({"image": key, "error": batch["error"][i]})
                continue
            width, height = batch["width"][i], batch["height"][i]
            keep = dets.scores[i] >= cfg.score_threshold
            boxes = to_original(dets.boxes[i][keep], size, width, height).cpu().tolist()
            scores = dets.scores[i][keep].cpu().tolist()
            labels = dets.classes[i][keep].cpu().tolist()
            lines.append(
                {
                    "image": key,
                    "width": width,
                    "height": height,
                    "detections": [
                        {"class": classes[c], "score": round(s, 4), "box": [round(v, 1) for v in b]}
                        for b, s, c in zip(boxes, scores, labels, strict=True)
                    ],
                }
            )
    return lines


def run_inference(
    env: SageMakerEnvironment, config: RunConfig, model_dir: Path, ctx: DistContext, should_stop: Any
) -> dict[str, Any]:
    """Predict every image of the ``images`` channel, shard by shard; returns the summary."""
    if not env.has_channel("images"):
        raise UserError("missing channel 'images' (a manifest of images or a folder of images)")
    images_dir = env.channel_dir("images")
    paths = list_images(images_dir)
    if not paths:
        raise UserError("the images channel holds no images (.jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp)")
    keys = [p.relative_to(images_dir).as_posix() for p in paths]
    if ctx.device.type == "cuda":
        check_amp(config.inference.amp, ctx.device)
    model, classes, size = load_model(model_dir, ctx.device)
    if ctx.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    size = size or config.input.size
    model_digest = _file_digest(model_dir / MODEL_FILE)
    settings = f"{config.inference.score_threshold}|{config.model.max_detections}|{size}"

    work = env.checkpoint_dir / SHARD_DIR
    work.mkdir(parents=True, exist_ok=True)
    shard_size = config.inference.shard_size
    starts = list(range(0, len(paths), shard_size))
    done_before = 0
    for index in range(ctx.rank, len(starts), ctx.world_size):
        lo, hi = starts[index], min(starts[index] + shard_size, len(paths))
        fingerprint = _digest(model_digest, settings, *keys[lo:hi])
        marker, results = work / f"shard-{index:05d}.done", work / f"shard-{index:05d}.jsonl"
        if marker.is_file() and results.is_file() and marker.read_text().strip() == fingerprint:
            done_before += 1
            continue
        start = time.perf_counter()
        lines = _predict_shard(
            model,
            paths[lo:hi],
            keys=keys[lo:hi],
            classes=classes,
            size=size,
            config=config,
            ctx=ctx,
            should_stop=should_stop,
        )
        text = "".join(json.dumps(line) + "\n" for line in lines)
        atomic_write_bytes(results, text.encode())
        atomic_write_bytes(marker, f"{fingerprint}\n".encode())
        emit(INFER_THROUGHPUT, (hi - lo) / max(time.perf_counter() - start, 1e-9), hi)
        log.info("shard %d (%d images) done", index, hi - lo)
    if done_before:
        log.info("%d shard(s) were already done by an earlier attempt", done_before)
    if ctx.distributed:
        # Ranks on other hosts wrote their shards to their own disks: bring the text to rank 0.
        mine = {
            i: (work / f"shard-{i:05d}.jsonl").read_text()
            for i in range(ctx.rank, len(starts), ctx.world_size)
        }
        for shards in gather_to_main(mine, ctx):
            for i, text in shards.items():
                path = work / f"shard-{i:05d}.jsonl"
                if not path.is_file() or path.read_text() != text:
                    atomic_write_bytes(path, text.encode())
    summary: dict[str, Any] = {}
    if ctx.is_main:
        summary = _merge(work, len(starts), classes, env.model_dir, config)
    barrier(ctx)
    return summary


def _merge(
    work: Path, shards: int, classes: tuple[str, ...], out_dir: Path, config: RunConfig
) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    per_class: Counter[str] = Counter({c: 0 for c in classes})
    images = with_defects = unreadable = 0

    def write(f: Any) -> None:
        nonlocal images, with_defects, unreadable
        for index in range(shards):
            with open(work / f"shard-{index:05d}.jsonl", "rb") as shard:
                for raw in shard:
                    f.write(raw)
                    line = json.loads(raw)
                    images += 1
                    if "error" in line:
                        unreadable += 1
                        continue
                    with_defects += bool(line["detections"])
                    per_class.update(d["class"] for d in line["detections"])

    atomic_write(out_dir / PREDICTIONS_FILE, write)
    summary = {
        "images": images,
        "images_with_defects": with_defects,
        "unreadable_images": unreadable,
        "detections": sum(per_class.values()),
        "detections_per_class": dict(per_class),
        "classes": list(classes),
        "score_threshold": config.inference.score_threshold,
        "shards": shards,
    }
    atomic_write(out_dir / SUMMARY_FILE, lambda f: f.write(json.dumps(summary, indent=2).encode()))
    log.info("inference summary: %s", summary)
    return summary
