"""The GPU check in its CPU mode (every code path it uses, on every change), its goal arithmetic, the
container fixes it led to, and the image: its base tag against the pin, its file set run on its own."""

from __future__ import annotations

import torch

from spotline.config import parse_run_config
from spotline_container.distributed import DistContext
from spotline_container.model import MEAN, STD, CenterNet, _mean_std, normalize
from spotline_container.solver import build_optimizer
from spotline_container.train import build_trainer
from tests.container.conftest import tiny_config


def test_normalize_builds_its_constants_once_and_computes_the_same() -> None:
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.equal(normalize(images, False), (images.float() - mean) / std)
    assert normalize(images, True).is_contiguous(memory_format=torch.channels_last)
    assert _mean_std(images.device)[0] is _mean_std(images.device)[0]  # no host-to-device copy per step


def test_optimizer_kernels_are_this_devices_not_the_checkpoints() -> None:
    config = parse_run_config(tiny_config(max_iter=4))
    model = CenterNet.from_config(config, 3)
    optimizer = build_optimizer(model, config.solver)
    assert all(g["fused"] is None for g in optimizer.param_groups)  # CPU numerics unchanged
    saved = optimizer.state_dict()
    for group in saved["param_groups"]:
        group["fused"] = True  # as written by a job on a GPU
    trainer = build_trainer(config, 3, DistContext(0, 1, 0, torch.device("cpu")), [])
    trainer.load_state_dict({**trainer.state_dict(), "optimizer": saved})
    assert all(g["fused"] is None for g in trainer.optimizer.param_groups)
