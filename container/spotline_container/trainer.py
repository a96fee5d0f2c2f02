"""The training loop: one step at a time, hooks around it, a stop checked between steps."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.profiler import record_function

from spotline_container.distributed import DistContext, any_rank
from spotline_container.model import normalize
from spotline_container.precision import autocast
from spotline_container.targets import centernet_loss
from spotline_toolkit.failures import Interrupted
from spotline_toolkit.stopping import StopRequest

log = logging.getLogger(__name__)

IMPLEMENTATION_KEYS = ("fused", "foreach")  # optimizer settings of the device, not of the run


class Hook:
    """Called by the trainer around the loop; ``self.trainer`` is set before ``before_train``."""

    trainer: Trainer

    def before_train(self) -> None:
        """Before the first step (also after a resume)."""

    def after_step(self) -> None:
        """After each step; ``trainer.iter`` counts the steps done."""

    def on_interrupt(self) -> None:
        """A stop was requested: save what must survive, fast."""

    def after_train(self) -> None:
        """After the last step."""


class Trainer:
    """Owns the full training state; :meth:`state_dict` is exactly what a resumed run needs."""

    def __init__(
        self,
        *,
        model: nn.Module,
        train_model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler,
        data: Iterable[dict[str, torch.Tensor]],
        ctx: DistContext,
        amp: str,
        channels_last: bool,
        clip_grad_norm: float | None,
        start_iter: int,
        max_iter: int,
        hooks: Sequence[Hook],
        stop: StopRequest,
        data_state: dict[str, int],
    ) -> None:
        self.model, self.train_model = model, train_model
        self.optimizer, self.scheduler, self.scaler = optimizer, scheduler, scaler
        self.data, self.ctx = data, ctx
        self.amp, self.channels_last, self.clip_grad_norm = amp, channels_last, clip_grad_norm
        self.iter, self.start_iter, self.max_iter = start_iter, start_iter, max_iter
        self.hooks, self.stop, self.data_state = list(hooks), stop, data_state
        self.last_loss = torch.zeros(())
        for hook in self.hooks:
            hook.trainer = self

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "iteration": self.iter,
            "data": {**self.data_state, "next_iteration": self.iter},
            "rng": {"torch": torch.get_rng_state()},
        }
        if torch.cuda.is_available():
            state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        # How this process runs its optimizer (fused on CUDA), not how the writer of the checkpoint did.
        kernels = [{k: g.get(k) for k in IMPLEMENTATION_KEYS} for g in self.optimizer.param_groups]
        self.optimizer.load_state_dict(state["optimizer"])
        for group, own in zip(self.optimizer.param_groups, kernels, strict=True):
            group.update(own)
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.iter = self.start_iter = int(state["iteration"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        saved = state.get("data", {})
        for key, value in self.data_state.items():
            if key in saved and saved[key] != value:
                log.warning(
                    "data order changed since the checkpoint: %s was %s, now %s", key, saved[key], value
                )

    def run_step(self, batch: dict[str, torch.Tensor]) -> None:
        """One optimisation step; its phases are named for ``torch.profiler`` (free when not profiling)."""
        device = self.ctx.device
        with record_function("step/forward"):
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            images = normalize(batch.pop("image"), self.channels_last)
            with autocast(self.amp, device):
                outputs = self.train_model(images)
        with record_function("step/loss"):
            losses = centernet_loss(outputs, batch)
        with record_function("step/backward"):
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(losses["loss"]).backward()  # type: ignore[no-untyped-call]
        with record_function("step/optimizer"):
            if self.clip_grad_norm:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
        self.last_loss = losses["loss"].detach()  # a tensor: no device sync per step

    def train(self) -> None:
        """Steps ``iter .. max_iter``; raises :class:`Interrupted` after saving if a stop was requested."""
        log.info("training steps %d..%d", self.iter, self.max_iter)
        self.train_model.train()
        for hook in self.hooks:
            hook.before_train()
        batches = iter(self.data)
        try:
            while self.iter < self.max_iter:
                if any_rank(self.stop.requested, self.ctx):
                    for hook in self.hooks:
                        hook.on_interrupt()
                    raise Interrupted(f"stopped at iteration {self.iter}")
                self.run_step(next(batches))
                self.iter += 1
                for hook in self.hooks:
                    hook.after_step()
        finally:
            del batches  # shuts the loader processes down
        for hook in self.hooks:
            hook.after_train()
