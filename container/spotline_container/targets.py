"""CenterNet training targets (built in the loader processes) and the loss that reads them."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

STRIDE = 4  # the heads see the image at a quarter of its size
MAX_OBJECTS = 128
SIZE_WEIGHT = 0.1
OFFSET_WEIGHT = 1.0


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """The largest centre shift that keeps IoU >= ``min_overlap`` (CenterNet's three cases)."""
    a1, b1 = 1.0, height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2, b2 = 4.0, 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def _draw_gaussian(heat: np.ndarray, cx: int, cy: int, radius: int) -> None:
    diameter = 2 * radius + 1
    sigma = diameter / 6
    ys, xs = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    gaussian = np.exp(-(xs * xs + ys * ys) / (2 * sigma * sigma))
    h, w = heat.shape
    left, right = min(cx, radius), min(w - cx, radius + 1)
    top, bottom = min(cy, radius), min(h - cy, radius + 1)
    patch = heat[cy - top : cy + bottom, cx - left : cx + right]
    g = gaussian[radius - top : radius + bottom, radius - left : radius + right]
    np.maximum(patch, g, out=patch)


def encode_targets(
    boxes: np.ndarray, labels: np.ndarray, num_classes: int, input_size: int
) -> dict[str, np.ndarray]:
    """Heatmap, centre indices, sizes and sub-pixel offsets for boxes (x1, y1, x2, y2 in input pixels)."""
    out = input_size // STRIDE
    heat = np.zeros((num_classes, out, out), dtype=np.float32)
    index = np.zeros(MAX_OBJECTS, dtype=np.int64)
    size = np.zeros((MAX_OBJECTS, 2), dtype=np.float32)
    offset = np.zeros((MAX_OBJECTS, 2), dtype=np.float32)
    mask = np.zeros(MAX_OBJECTS, dtype=np.float32)
    k = 0
    for box, label in zip(boxes[:MAX_OBJECTS], labels[:MAX_OBJECTS], strict=True):
        x1, y1, x2, y2 = np.clip(box / STRIDE, 0, out - 1e-3)
        w, h = x2 - x1, y2 - y1
        if w <= 0 or h <= 0:
            continue
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        ix, iy = int(cx), int(cy)
        radius = max(0, int(gaussian_radius(math.ceil(h), math.ceil(w))))
        _draw_gaussian(heat[int(label)], ix, iy, radius)
        index[k] = iy * out + ix
        size[k] = (w, h)
        offset[k] = (cx - ix, cy - iy)
        mask[k] = 1
        k += 1
    return {"heatmap": heat, "index": index, "size": size, "offset": offset, "mask": mask}


def _gather(feature: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) at flat positions (B, K) -> (B, K, C)."""
    b, c = feature.shape[:2]
    flat = feature.reshape(b, c, -1)
    return flat.gather(2, index.unsqueeze(1).expand(b, c, index.shape[1])).permute(0, 2, 1)


def centernet_loss(
    outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Penalty-reduced focal loss on the heatmap, L1 on sizes and offsets at object centres."""
    logits = outputs["heatmap"].float()
    gt = targets["heatmap"]
    pos = gt.eq(1).float()
    neg_weight = torch.pow(1 - gt, 4)
    prob = torch.sigmoid(logits)
    pos_loss = F.logsigmoid(logits) * torch.pow(1 - prob, 2) * pos
    neg_loss = F.logsigmoid(-logits) * torch.pow(prob, 2) * neg_weight * (1 - pos)
    num_pos = pos.sum().clamp(min=1.0)
    heat_loss = -(pos_loss.sum() + neg_loss.sum()) / num_pos

    mask = targets["mask"].unsqueeze(2)
    denom = mask.sum() * 2 + 1e-4
    size_pred = _gather(outputs["size"].float(), targets["index"])
    offset_pred = _gather(outputs["offset"].float(), targets["index"])
    size_loss = (F.l1_loss(size_pred, targets["size"], reduction="none") * mask).sum() / denom
    offset_loss = (F.l1_loss(offset_pred, targets["offset"], reduction="none") * mask).sum() / denom
    total = heat_loss + SIZE_WEIGHT * size_loss + OFFSET_WEIGHT * offset_loss
    return {
        "loss": total,
        "heatmap": heat_loss.detach(),
        "size": size_loss.detach(),
        "offset": offset_loss.detach(),
    }
