"""The detector: a residual backbone, an FPN-lite neck back to stride 4, and CenterNet heads.

Single-stage and anchor-free: per class a heatmap of object centres, plus the box size and the
sub-pixel centre offset at every position. Built from plain keyword arguments; :meth:`from_config`
reads them from the run config (detectron2's ``from_config`` habit).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from spotline.config import RunConfig

HEATMAP_PRIOR = 0.1  # initial centre probability; keeps the focal loss sane at step 0


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        out: torch.Tensor = self.relu(y + self.shortcut(x))
        return out


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class Backbone(nn.Module):
    """A stride-4 stem and four stages (strides 4, 8, 16, 32) of ``depth`` blocks each."""

    def __init__(self, depth: int, width: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv_bn_relu(3, width, 2), _conv_bn_relu(width, width, 2))
        self.widths = [width, width * 2, width * 4, width * 8]
        stages = []
        cin = width
        for i, cout in enumerate(self.widths):
            blocks = [BasicBlock(cin, cout, 1 if i == 0 else 2)]
            blocks += [BasicBlock(cout, cout, 1) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class Neck(nn.Module):
    """Top-down path with lateral 1x1 convolutions, merged back to the stride-4 map."""

    def __init__(self, in_widths: list[int], width: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in in_widths)
        self.smooth = _conv_bn_relu(width, width)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.lateral[-1](features[-1])
        for lateral, feature in zip(reversed(self.lateral[:-1]), reversed(features[:-1]), strict=True):
            x = lateral(feature) + nn.functional.interpolate(x, size=feature.shape[-2:], mode="nearest")
        out: torch.Tensor = self.smooth(x)
        return out


def _head(width: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(width, width, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(width, out, 1))


class CenterNet(nn.Module):
    """(B, 3, S, S) normalised floats -> heatmap logits (B, C, S/4, S/4), size and offset (B, 2, S/4, S/4)."""

    def __init__(self, *, num_classes: int, depth: int = 2, width: int = 32, head_width: int = 64) -> None:
        super().__init__()
        self.kwargs: dict[str, Any] = {
            "num_classes": num_classes,
            "depth": depth,
            "width": width,
            "head_width": head_width,
        }
        self.backbone = Backbone(depth, width)
        self.neck = Neck(self.backbone.widths, head_width)
        self.heatmap = _head(head_width, num_classes)
        self.size = _head(head_width, 2)
        self.offset = _head(head_width, 2)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        last = self.heatmap[-1]
        assert isinstance(last, nn.Conv2d)
        assert last.bias is not None
        nn.init.normal_(last.weight, std=0.01)
        nn.init.constant_(last.bias, -float(torch.log(torch.tensor((1 - HEATMAP_PRIOR) / HEATMAP_PRIOR))))

    @classmethod
    def from_config(cls, config: RunConfig, num_classes: int) -> CenterNet:
        m = config.model
        return cls(num_classes=num_classes, depth=m.depth, width=m.width, head_width=m.head_width)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.neck(self.backbone(images))
        return {"heatmap": self.heatmap(x), "size": self.size(x), "offset": self.offset(x)}


MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


@functools.cache
def _mean_std(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # Built once per device: a tensor made from Python numbers is a blocking host-to-device copy,
    # which on CUDA waits for every queued kernel (two host syncs per step before this cache).
    with torch.inference_mode(False):  # plain tensors, whichever mode the first caller is in
        mean = torch.tensor(MEAN, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        std = torch.tensor(STD, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return mean, std


def normalize(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """uint8 (B, 3, H, W) on the device -> normalised float32, in the model's memory format."""
    mean, std = _mean_std(images.device)
    x = (images.float() - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
