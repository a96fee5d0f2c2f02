"""Synthetic top-down rail-track images with defects, as COCO datasets: deterministic by seed.

Each image shows ballast, sleepers, two rails and their fasteners under varying light and blur, with
zero to three defects: a missing fastener, a crack across a rail head, or a squat (a dark oval dent on
the rail head). Tests, the demo and the benchmarks train on it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ("missing_fastener", "rail_crack", "surface_squat")
SPLITS = {"train": 1, "val": 2, "unlabelled": 3}

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]  # x, y, w, h in pixels


@dataclass(frozen=True)
class Defect:
    category: str
    box: Box


def _upsampled_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    coarse = rng.random((cells, cells)).astype(np.float32)
    img = Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32) / 255.0


def _overlaps(box: Box, others: list[Defect]) -> bool:
    x, y, w, h = box
    for other in others:
        ox, oy, ow, oh = other.box
        if x < ox + ow + 2 and ox < x + w + 2 and y < oy + oh + 2 and oy < y + h + 2:
            return True
    return False


def render_track(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[Defect]]:
    """One ``size`` x ``size`` RGB image (uint8) and its defects."""
    s = float(size)
    # Ballast: coarse stones over fine grit, in a grey-brown tint.
    tint = np.array([1.0, 0.95, 0.85]) * rng.uniform(0.9, 1.1, 3)
    ballast = 0.35 + 0.25 * _upsampled_noise(rng, size, max(4, size // 6)) + 0.1 * rng.random((size, size))
    canvas = ballast[:, :, None] * tint[None, None, :] * 255.0

    rail_w = max(5.0, s * rng.uniform(0.055, 0.07))
    left = s * rng.uniform(0.26, 0.34)
    right = s - left + s * rng.uniform(-0.03, 0.03)
    rails = [left, right]
    pitch = s * rng.uniform(0.22, 0.3)
    sleeper_h = pitch * rng.uniform(0.32, 0.42)
    first = rng.uniform(-pitch / 2, pitch / 2)
    concrete = rng.random() < 0.6
    sleeper_color = np.array([165, 160, 150]) if concrete else np.array([105, 75, 50])
    sleeper_color = sleeper_color * rng.uniform(0.85, 1.1)
    sleeper_ys = []
    y = first
    while y < s + pitch:
        top, bottom = round(y), round(y + sleeper_h)
        if bottom > 0 and top < size:
            grain = 0.9 + 0.2 * rng.random((max(0, min(size, bottom)) - max(0, top), size))
            canvas[max(0, top) : min(size, bottom)] = grain[:, :, None] * sleeper_color[None, None, :]
            sleeper_ys.append(y + sleeper_h / 2)
        y += pitch

    # Fastener slots: both sides of each rail on each sleeper.
    fast_w, fast_h = max(3.0, rail_w * 0.75), max(3.0, sleeper_h * 0.45)
    gap = max(1.0, rail_w * 0.15)
    slots: list[Box] = []
    for cy in sleeper_ys:
        for rx in rails:
            for fx in (rx - rail_w / 2 - gap - fast_w, rx + rail_w / 2 + gap):
                slot: Box = (fx, cy - fast_h / 2, fast_w, fast_h)
                if slot[0] >= 0 and slot[1] >= 0 and slot[0] + slot[2] <= s and slot[1] + slot[3] <= s:
                    slots.append(slot)

    defects: list[Defect] = []
    wanted = rng.choice(4, p=[0.15, 0.4, 0.3, 0.15])
    for _ in range(int(wanted) * 4):
        if len(defects) >= wanted:
            break
        kind = CLASSES[rng.integers(len(CLASSES))]
        if kind == "missing_fastener":
            if not slots:
                continue
            x, y0, w, h = slots[rng.integers(len(slots))]
            box: Box = (x - 1, y0 - 1, w + 2, h + 2)
        else:
            rx = rails[rng.integers(2)]
            cy = rng.uniform(0.08 * s, 0.92 * s)
            if kind == "rail_crack":
                h = max(6.0, s * rng.uniform(0.035, 0.05))
                box = (rx - rail_w / 2 - 1, cy - h / 2, rail_w + 2, h)
            else:
                w = rail_w * rng.uniform(0.7, 0.95)
                h = rail_w * rng.uniform(1.0, 1.8)
                box = (rx - w / 2, cy - h / 2, w, h)
        if _overlaps(box, defects):
            continue
        defects.append(Defect(kind, box))

    missing = {d.box for d in defects if d.category == "missing_fastener"}
    fast_tone = rng.uniform(35, 60)
    for fastener in slots:
        x, y0, w, h = fastener
        if (x - 1, y0 - 1, w + 2, h + 2) in missing:
            # An empty bolt hole stays where the clip was.
            bx, by = round(x + w / 2), round(y0 + h / 2)
            canvas[by - 1 : by + 1, bx - 1 : bx + 1] *= 0.6
            continue
        canvas[round(y0) : round(y0 + h), round(x) : round(x + w)] = fast_tone
        bx, by = round(x + w / 2), round(y0 + h / 2)
        canvas[by - 1 : by + 1, bx - 1 : bx + 1] = fast_tone + 70

    steel = rng.uniform(110, 140)
    head = rng.uniform(190, 230)
    for rx in rails:
        x0, x1 = round(rx - rail_w / 2), round(rx + rail_w / 2)
        canvas[:, x0:x1] = steel
        h0, h1 = round(rx - rail_w * 0.3), round(rx + rail_w * 0.3)
        canvas[:, h0:h1] = head + 12 * rng.standard_normal((size, 1, 1))

    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for d in defects:
        x, y0, w, h = d.box
        if d.category == "rail_crack":
            slant = rng.uniform(-0.4, 0.4) * h
            width = max(1, round(s / 90))
            cy = y0 + h / 2
            draw.line([(x + 1, cy - slant / 2), (x + w - 1, cy + slant / 2)], fill=(25, 22, 20), width=width)
        elif d.category == "surface_squat":
            tone = int(rng.uniform(45, 75))
            draw.ellipse([x, y0, x + w, y0 + h], fill=(tone + 15, tone + 5, tone))
            draw.ellipse([x + w * 0.3, y0 + h * 0.3, x + w * 0.7, y0 + h * 0.7], fill=(tone - 20,) * 3)

    # Light: a gradient, a gamma and some blur, as from a moving inspection car.
    arr = np.asarray(image, dtype=np.float32) / 255.0
    gy, gx = np.mgrid[0:size, 0:size].astype(np.float32) / s
    angle = rng.uniform(0, 2 * np.pi)
    light = 1.0 + rng.uniform(0.0, 0.3) * ((gx - 0.5) * np.cos(angle) + (gy - 0.5) * np.sin(angle))
    arr = np.clip(arr * light[:, :, None] * rng.uniform(0.8, 1.15), 0, 1) ** rng.uniform(0.8, 1.25)
    arr = arr + rng.normal(0, 0.012, arr.shape)
    image = Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8))
    blur = rng.uniform(0.0, 0.9) * s / 256
    if blur > 0.15:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(image), defects


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS[split], index])


def _write_labelled(out: Path, split: str, n: int, seed: int, size: int) -> Path:
    folder = out / split
    (folder / "images").mkdir(parents=True, exist_ok=True)
    images: list[dict[str, object]] = []
    annotations: list[dict[str, object]] = []
    for i in range(n):
        pixels, defects = render_track(_rng(seed, split, i), size)
        name = f"images/{split}_{i:05d}.png"
        Image.fromarray(pixels).save(folder / name)
        images.append({"id": i + 1, "file_name": name, "width": size, "height": size})
        for d in defects:
            x, y, w, h = (round(v, 2) for v in d.box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": CLASSES.index(d.category) + 1,
                    "bbox": [x, y, w, h],
                    "area": round(w * h, 2),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": c, "supercategory": "defect"} for i, c in enumerate(CLASSES)]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    path = folder / "annotations.json"
    path.write_text(json.dumps(coco))
    return path


def generate_dataset(  # noqa: PLR0917 - mirrors the CLI, positional by design
    out_dir: str | Path,
    n_train: int = 200,
    n_val: int = 50,
    n_unlabelled: int = 20,
    seed: int = 0,
    image_size: int = 256,
) -> dict[str, Path]:
    """Write ``train/`` and ``val/`` (annotations.json + images/*.png) and ``unlabelled/*.jpg``."""
    out = Path(out_dir)
    paths = {}
    for split, n in (("train", n_train), ("val", n_val)):
        paths[split] = _write_labelled(out, split, n, seed, image_size).parent
    unlabelled = out / "unlabelled"
    unlabelled.mkdir(parents=True, exist_ok=True)
    for i in range(n_unlabelled):
        pixels, _ = render_track(_rng(seed, "unlabelled", i), image_size)
        Image.fromarray(pixels).save(unlabelled / f"track_{i:05d}.jpg", quality=92)
    paths["unlabelled"] = unlabelled
    log.info("synthetic dataset in %s: %d train, %d val, %d unlabelled", out, n_train, n_val, n_unlabelled)
    return paths


def main(argv: list[str]) -> int:
    """``python -m spotline_container synth OUT [--train N --val N --unlabelled N --seed S --size PX]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="spotline_container synth", description=generate_dataset.__doc__)
    parser.add_argument("out_dir")
    parser.add_argument("--train", type=int, default=200)
    parser.add_argument("--val", type=int, default=50)
    parser.add_argument("--unlabelled", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)
    generate_dataset(args.out_dir, args.train, args.val, args.unlabelled, args.seed, args.size)
    return 0
