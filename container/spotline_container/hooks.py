"""Trainer hooks: metric lines and records, periodic and on-SIGTERM checkpoints, periodic evaluation."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch
from torch import nn

from spotline.metric_names import (
    TRAIN_ITERATION,
    TRAIN_LOSS,
    TRAIN_LR,
    TRAIN_THROUGHPUT,
    VAL_MAP,
    VAL_MAP50,
)
from spotline_container.checkpoint import CheckpointStore
from spotline_container.metrics_file import MetricsFile
from spotline_container.trainer import Hook
from spotline_toolkit.metrics import metric_line

log = logging.getLogger(__name__)
metrics_log = logging.getLogger("spotline.metrics")


class MetricsHook(Hook):
    """``#metric train/loss=... step=N`` lines (the control plane's MetricDefinitions read them),
    and the same points in the run's metrics file when there is one.

    ``train/iteration`` (a line only) also goes out when a stop is requested: the step the job
    reached, which the control plane sets against the checkpoint left in S3 (the work lost).
    """

    def __init__(self, period: int, global_batch: int, file: MetricsFile | None = None) -> None:
        self.period, self.global_batch, self.file = period, global_batch, file
        self._since = time.perf_counter()
        self._iters = 0
        self._loss_sum: torch.Tensor | float = 0.0

    def before_train(self) -> None:
        self._since = time.perf_counter()

    def after_step(self) -> None:
        t = self.trainer
        self._iters += 1
        self._loss_sum += t.last_loss
        if t.iter % self.period and t.iter != t.max_iter:
            return
        elapsed = max(time.perf_counter() - self._since, 1e-9)
        emit(TRAIN_LOSS, float(self._loss_sum) / self._iters, t.iter, self.file)
        emit(TRAIN_LR, t.lr, t.iter, self.file)
        emit(TRAIN_THROUGHPUT, self._iters * self.global_batch / elapsed, t.iter, self.file)
        emit(TRAIN_ITERATION, t.iter, t.iter)  # the file has its own step for every record
        if self.file is not None:
            self.file.flush()
        self._since, self._iters, self._loss_sum = time.perf_counter(), 0, 0.0

    def on_interrupt(self) -> None:
        emit(TRAIN_ITERATION, self.trainer.iter, self.trainer.iter)


def emit(name: str, value: float, step: int, file: MetricsFile | None = None) -> None:
    metrics_log.info(metric_line(name, value, step))
    if file is not None:
        file.add(name, value, step)


class MetricsFileHook(Hook):
    """Marks where each attempt started and where it was interrupted in the metrics file."""

    def __init__(self, file: MetricsFile) -> None:
        self.file = file

    def before_train(self) -> None:
        self.file.started(self.trainer.iter, self.trainer.max_iter)
        self.file.flush()

    def on_interrupt(self) -> None:
        self.file.interrupted(self.trainer.iter)
        self.file.flush()

    def after_train(self) -> None:
        self.file.flush()


class CheckpointHook(Hook):
    """Every ``period_iters`` steps, every ``period_minutes``, on SIGTERM and at the end (rank 0 only)."""

    def __init__(self, store: CheckpointStore, period_iters: int, period_minutes: float) -> None:
        self.store, self.period_iters, self.period_s = store, period_iters, period_minutes * 60
        self._last_time = time.monotonic()
        self._last_iter = -1

    def before_train(self) -> None:
        self._last_time, self._last_iter = time.monotonic(), self.trainer.iter

    def _save(self) -> None:
        if self.trainer.iter != self._last_iter:
            self.store.save(self.trainer.state_dict(), self.trainer.iter)
        self._last_time, self._last_iter = time.monotonic(), self.trainer.iter

    def after_step(self) -> None:
        due_iter = self.trainer.iter % self.period_iters == 0
        due_time = time.monotonic() - self._last_time >= self.period_s
        if due_iter or due_time:
            self._save()

    def on_interrupt(self) -> None:
        self._save()

    def after_train(self) -> None:
        self._save()


class EvalHook(Hook):
    """Runs ``evaluate(model)`` (metrics, or None when abandoned for a stop) and prints val/ lines."""

    def __init__(
        self,
        period: int,
        evaluate: Callable[[nn.Module], dict[str, float] | None],
        file: MetricsFile | None = None,
    ) -> None:
        self.period, self.evaluate, self.file = period, evaluate, file
        self.latest: dict[str, float] | None = None

    def _run(self) -> None:
        start = time.perf_counter()
        result = self.evaluate(self.trainer.model)
        if result is None:
            log.info("evaluation abandoned: stop requested")
            return
        self.latest = result
        emit(VAL_MAP50, result["mAP50"], self.trainer.iter, self.file)
        emit(VAL_MAP, result["mAP"], self.trainer.iter, self.file)
        if self.file is not None:
            self.file.flush()
        log.info("evaluation took %.1f s", time.perf_counter() - start)

    def after_step(self) -> None:
        t = self.trainer
        if self.period and t.iter % self.period == 0 and t.iter != t.max_iter:
            self._run()

    def after_train(self) -> None:
        self._run()
