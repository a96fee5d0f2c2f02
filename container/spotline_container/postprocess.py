"""From head outputs to boxes: peak picking on the heatmap (a 3x3 max-pool stands in for NMS)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from spotline_container.targets import STRIDE


@dataclass(frozen=True)
class Detections:
    """Per batch: boxes (B, K, 4) as x1, y1, x2, y2 in input pixels, scores (B, K), classes (B, K)."""

    boxes: torch.Tensor
    scores: torch.Tensor
    classes: torch.Tensor


@torch.no_grad()
def decode(outputs: dict[str, torch.Tensor], max_detections: int) -> Detections:
    heat = torch.sigmoid(outputs["heatmap"].float())
    b, c, h, w = heat.shape
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
    k = min(max_detections, c * h * w)
    scores, flat = peaks.reshape(b, -1).topk(k)
    classes = flat // (h * w)
    pixel = flat % (h * w)
    ys = (pixel // w).float()
    xs = (pixel % w).float()
    size = outputs["size"].float().reshape(b, 2, -1).gather(2, pixel.unsqueeze(1).expand(b, 2, k))
    offset = outputs["offset"].float().reshape(b, 2, -1).gather(2, pixel.unsqueeze(1).expand(b, 2, k))
    cx, cy = xs + offset[:, 0], ys + offset[:, 1]
    half_w, half_h = size[:, 0].clamp(min=0) / 2, size[:, 1].clamp(min=0) / 2
    boxes = torch.stack((cx - half_w, cy - half_h, cx + half_w, cy + half_h), dim=2) * STRIDE
    return Detections(boxes=boxes, scores=scores, classes=classes)


def to_original(boxes: torch.Tensor, input_size: int, width: int, height: int) -> torch.Tensor:
    """Boxes (K, 4) in input pixels -> the original image's pixels, clipped to it."""
    scale = boxes.new_tensor([width / input_size, height / input_size] * 2)
    out = boxes * scale
    out[:, 0::2] = out[:, 0::2].clamp(0, width)
    out[:, 1::2] = out[:, 1::2].clamp(0, height)
    return out
