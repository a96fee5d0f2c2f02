"""Training augmentation on one resized image and its boxes: zoom, flips, brightness, contrast.

Runs in the loader processes with a generator seeded per sample, so a resumed run sees exactly the
same augmented images as an uninterrupted one.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from spotline.config.model import AugmentSection

PAD_VALUE = 114
MIN_VISIBLE = 0.4  # a box cut by the crop is kept if this much of it is still in the image


def _zoom(
    image: np.ndarray, boxes: np.ndarray, scale: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    size = image.shape[0]
    new = max(8, round(size * scale))
    if new == size:
        return image, boxes
    zoomed = np.asarray(Image.fromarray(image).resize((new, new), Image.Resampling.BILINEAR))
    boxes = boxes * (new / size)
    if new > size:
        ox, oy = (int(v) for v in rng.integers(0, new - size + 1, 2))
        out = zoomed[oy : oy + size, ox : ox + size]
        shift = np.array([ox, oy, ox, oy], dtype=np.float32)
        moved = boxes - shift
    else:
        ox, oy = (int(v) for v in rng.integers(0, size - new + 1, 2))
        out = np.full_like(image, PAD_VALUE)
        out[oy : oy + new, ox : ox + new] = zoomed
        moved = boxes + np.array([ox, oy, ox, oy], dtype=np.float32)
    return np.ascontiguousarray(out), moved


def augment(
    image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, cfg: AugmentSection, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``image`` (S, S, 3) uint8, ``boxes`` (N, 4) x1 y1 x2 y2 pixels -> the augmented triple."""
    size = image.shape[0]
    boxes = boxes.astype(np.float32)
    lo, hi = cfg.scale
    if hi > lo or lo != 1.0:
        image, moved = _zoom(image, boxes, float(rng.uniform(lo, hi)), rng)
        clipped = np.clip(moved, 0, size)
        area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
        visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
        keep = (visible >= MIN_VISIBLE * np.maximum(area, 1e-6)) & (visible > 1.0)
        boxes, labels = clipped[keep], labels[keep]
    if rng.random() < cfg.hflip:
        image = image[:, ::-1]
        boxes = np.stack([size - boxes[:, 2], boxes[:, 1], size - boxes[:, 0], boxes[:, 3]], axis=1)
    if rng.random() < cfg.vflip:
        image = image[::-1]
        boxes = np.stack([boxes[:, 0], size - boxes[:, 3], boxes[:, 2], size - boxes[:, 1]], axis=1)
    if cfg.brightness > 0 or cfg.contrast > 0:
        gain = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)
        bias = 255.0 * rng.uniform(-cfg.brightness, cfg.brightness)
        pixels = image.astype(np.float32)
        mean = pixels.mean()
        image = np.clip((pixels - mean) * gain + mean + bias, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image), boxes.reshape(-1, 4).astype(np.float32), labels
