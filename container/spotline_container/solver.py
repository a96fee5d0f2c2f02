"""Optimizer and learning-rate schedule from the ``solver`` section: warm-up, then steps."""

from __future__ import annotations

import bisect
import functools

import torch
from torch import nn

from spotline.config.model import SolverSection


def build_optimizer(model: nn.Module, solver: SolverSection) -> torch.optim.Optimizer:
    """No weight decay on norms and biases (decaying them only hurts).

    On CUDA the fused kernels: one launch for all parameters, and the fp16 grad scaler hands them its
    inf check as a tensor instead of reading it back to the host before every step.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": solver.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    on_cuda = bool(decay or no_decay) and all(p.is_cuda for p in [*decay, *no_decay])
    fused = True if on_cuda else None  # None: PyTorch's default implementation for the device
    if solver.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=solver.base_lr, momentum=solver.momentum, nesterov=True, fused=fused
        )
    return torch.optim.AdamW(groups, lr=solver.base_lr, fused=fused)


def lr_factor(
    iteration: int, *, warmup_iters: int, warmup_factor: float, steps: tuple[int, ...], gamma: float
) -> float:
    """Multiplier of ``base_lr`` for the step at ``iteration`` (0-based)."""
    factor = gamma ** bisect.bisect_right(steps, iteration)
    if iteration < warmup_iters:
        alpha = iteration / warmup_iters
        factor *= warmup_factor * (1 - alpha) + alpha
    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, solver: SolverSection
) -> torch.optim.lr_scheduler.LambdaLR:
    schedule = functools.partial(
        lr_factor,
        warmup_iters=solver.warmup_iters,
        warmup_factor=solver.warmup_factor,
        steps=tuple(solver.steps),
        gamma=solver.gamma,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
