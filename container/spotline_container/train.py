"""Training mode: channels and config in, checkpoints along the way, ``model.pt`` out."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from spotline.config import RunConfig
from spotline_container.checkpoint import CheckpointStore
from spotline_container.data import build_train_loader, load_coco_channel
from spotline_container.distributed import DistContext, barrier
from spotline_container.env import SageMakerEnvironment
from spotline_container.hooks import CheckpointHook, EvalHook, MetricsFileHook, MetricsHook
from spotline_container.metrics_file import MetricsFile
from spotline_container.model import CenterNet
from spotline_container.precision import check_amp, grad_scaler
from spotline_container.solver import build_optimizer, build_scheduler
from spotline_container.trainer import Hook, Trainer
from spotline_toolkit.checkpoints import atomic_write
from spotline_toolkit.failures import UserError
from spotline_toolkit.stopping import StopRequest
from spotline_toolkit.torch_state import torch_save

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
MODEL_FORMAT = 1
TUNING_SECTION = "tuning"


def save_model(
    model_dir: Path,
    model: CenterNet,
    classes: tuple[str, ...],
    config_document: dict[str, Any],
    metrics: dict[str, float],
) -> None:
    """``model.pt`` (weights + what inference needs), ``config.yaml`` (resolved config), ``metrics.json``.

    A tuning trial's config keeps its tuned values but not the ``tuning`` section: that describes
    the search, not this model, and inference refuses a config that asks for one.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    config_document = {k: v for k, v in config_document.items() if k != TUNING_SECTION}
    payload = {
        "format": MODEL_FORMAT,
        "model": model.state_dict(),
        "kwargs": dict(model.kwargs),
        "classes": list(classes),
        "input_size": int(config_document.get("input", {}).get("size", 0)),
    }
    torch_save(payload, model_dir / MODEL_FILE)
    text = yaml.safe_dump(config_document, sort_keys=False)
    atomic_write(model_dir / CONFIG_FILE, lambda f: f.write(text.encode()))
    atomic_write(model_dir / METRICS_FILE, lambda f: f.write(json.dumps(metrics, indent=2).encode()))


def build_trainer(
    config: RunConfig,
    num_classes: int,
    ctx: DistContext,
    data: Iterable[dict[str, torch.Tensor]],
    *,
    start_iter: int = 0,
    hooks: Sequence[Hook] = (),
    stop: StopRequest | None = None,
    data_state: dict[str, int] | None = None,
    compile_backend: str = "inductor",
) -> Trainer:
    """The model, optimizer, schedule and loop of a run as ``config`` asks (memory format, compile, DDP).

    Seeds the weights with ``solver.seed``. ``compile_backend`` is for checks that cannot wait for
    inductor (the GPU check's CPU mode); jobs always compile with inductor.
    """
    solver = config.solver
    torch.manual_seed(solver.seed)
    model = CenterNet.from_config(config, num_classes).to(ctx.device)
    if solver.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = build_optimizer(model, solver)
    train_model: nn.Module = model
    if solver.compile:
        train_model = torch.compile(model, backend=compile_backend)  # type: ignore[assignment]
    if ctx.distributed:
        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(train_model, device_ids=device_ids)
    return Trainer(
        model=model,
        train_model=train_model,
        optimizer=optimizer,
        scheduler=build_scheduler(optimizer, solver),
        scaler=grad_scaler(solver.amp, ctx.device),
        data=data,
        ctx=ctx,
        amp=solver.amp,
        channels_last=solver.channels_last,
        clip_grad_norm=solver.clip_grad_norm,
        start_iter=start_iter,
        max_iter=solver.max_iter,
        hooks=hooks,
        stop=stop or StopRequest(),
        data_state=dict(data_state or {}),
    )


def checkpoint_fit_check(config: RunConfig, num_classes: int) -> Callable[[dict[str, Any]], object]:
    """A throwaway trainer of this run on the CPU (no DDP, no compile): its ``load_state_dict``
    raises for a checkpoint that does not fit the model, optimizer, schedule or scaler."""
    cpu = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    probe_config = dataclasses.replace(config, solver=dataclasses.replace(config.solver, compile=False))
    return build_trainer(probe_config, num_classes, cpu, []).load_state_dict


def run_training(
    env: SageMakerEnvironment,
    config: RunConfig,
    config_document: dict[str, Any],
    ctx: DistContext,
    stop: StopRequest,
) -> dict[str, float]:
    """Train (resuming from the newest readable checkpoint) and write the model; returns final metrics."""
    if not env.has_channel("train"):
        raise UserError("missing channel 'train' (COCO annotations.json + images)")
    solver = config.solver
    if solver.batch_size % ctx.world_size:
        raise UserError(
            f"solver.batch_size={solver.batch_size} is not divisible by the {ctx.world_size} GPUs of the job"
        )
    check_amp(solver.amp, ctx.device)
    train = load_coco_channel(env.channel_dir("train"), config.model.classes)
    val = load_coco_channel(env.channel_dir("val"), train.classes) if env.has_channel("val") else None
    classes = train.classes
    # Full document with the classes and size this model was trained with (inference reads it back).
    config_document = {
        **config_document,
        "model": {**config_document.get("model", {}), "classes": list(classes)},
    }
    config_document.setdefault("input", {})["size"] = config.input.size
    log.info(
        "classes %s; %d train images%s",
        list(classes),
        len(train.records),
        f", {len(val.records)} val" if val else "",
    )

    store = CheckpointStore(env.checkpoint_dir, config.checkpoint.keep)
    if ctx.is_main:
        store.clean_temporaries()
    barrier(ctx)
    # On the CPU (RNG states must stay CPU tensors); every rank reads the same files, so every
    # rank picks the same one: the newest that loads into a CPU copy of this run's trainer.
    state = store.load_latest(fits=checkpoint_fit_check(config, len(classes))) if store.candidates() else None
    start_iter = int(state["iteration"]) if state else 0

    data = build_train_loader(
        train,
        config,
        rank=ctx.rank,
        world=ctx.world_size,
        start_iter=start_iter,
        pin_memory=ctx.device.type == "cuda",
    )
    hooks: list[Hook] = []
    eval_hook = None
    if ctx.is_main:
        metrics_file = MetricsFile(env.checkpoint_dir, env.attempt)
        hooks.append(MetricsFileHook(metrics_file))
        hooks.append(MetricsHook(solver.log_period, solver.batch_size, metrics_file))
        hooks.append(CheckpointHook(store, config.checkpoint.period_iters, config.checkpoint.period_minutes))
        if val is not None:
            # Imported here: faster-coco-eval is needed only when there is something to evaluate.
            from spotline_container.evaluation import evaluate

            eval_hook = EvalHook(
                config.eval.period_iters,
                lambda model: evaluate(model, val, config, ctx.device, lambda: stop.requested),
                metrics_file,
            )
            hooks.append(eval_hook)
    data_state = {"seed": solver.seed, "batch_size": solver.batch_size, "dataset_size": len(train.records)}
    trainer = build_trainer(
        config,
        len(classes),
        ctx,
        data,
        start_iter=start_iter,
        hooks=hooks,
        stop=stop,
        data_state=data_state,
    )
    if state is not None:
        try:
            trainer.load_state_dict(state)
        except (KeyError, RuntimeError, TypeError, ValueError) as e:  # it fitted the CPU copy
            raise UserError(f"checkpoint of iteration {start_iter} does not fit this config: {e}") from e
    trainer.train()

    metrics = {"iteration": float(trainer.iter)}
    if eval_hook is not None and eval_hook.latest is not None:
        metrics.update(eval_hook.latest)
    if ctx.is_main:
        assert isinstance(trainer.model, CenterNet)
        save_model(env.model_dir, trainer.model, classes, config_document, metrics)
        log.info("model written to %s", env.model_dir / MODEL_FILE)
    barrier(ctx)
    return metrics
