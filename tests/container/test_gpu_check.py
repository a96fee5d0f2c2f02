"""The GPU check in its CPU mode (every code path it uses, on every change), its goal arithmetic, the
container fixes it led to, and the image: its base tag against the pin, its file set run on its own."""

from __future__ import annotations

import torch

from spotline_container.model import MEAN, STD, _mean_std, normalize


def test_normalize_builds_its_constants_once_and_computes_the_same() -> None:
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.equal(normalize(images, False), (images.float() - mean) / std)
    assert normalize(images, True).is_contiguous(memory_format=torch.channels_last)
    assert _mean_std(images.device)[0] is _mean_std(images.device)[0]  # no host-to-device copy per step
