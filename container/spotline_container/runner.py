"""The SageMaker entry point: environment snapshot, config, mode, and the failure contract.

Exit status: 0 done; 143 stopped by SIGTERM after saving (no failure file); 1 failed, with
``/opt/ml/output/failure`` saying why. The failure text starts with ``UserError:`` when the user must
fix something (config, hyperparameters, channels, data) and ``PlatformError:`` otherwise; SageMaker
shows it as the job's FailureReason (``AlgorithmError: UserError: ...``).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from spotline.config import ConfigError, RunConfig, apply_overrides, parse_run_config
from spotline.config.loader import load_yaml_document
from spotline_container.distributed import (
    WORKER_FAILURE_ENV,
    DistContext,
    in_worker,
    init_process_group,
    launch_workers,
    plan_launch,
    shutdown,
)
from spotline_container.env import SageMakerEnvironment
from spotline_container.threads import THREADS_ENV
from spotline_toolkit.failures import PLATFORM_ERROR, USER_ERROR, Interrupted, UserError, write_failure
from spotline_toolkit.stopping import SIGTERM_EXIT_CODE, StopRequest

log = logging.getLogger("spotline_container")

CONFIG_SUFFIXES = (".yaml", ".yml")
EMBEDDED_CONFIG = "config.yaml"


@dataclass(frozen=True)
class ResolvedConfig:
    config: RunConfig
    document: dict[str, Any]
    model_dir: Path | None  # inference: the extracted model


def setup_logging() -> None:
    level = os.environ.get("SPOTLINE_LOG_LEVEL", "INFO").upper()
    rank = os.environ.get("RANK")
    where = f"[rank {rank}] " if rank is not None else ""
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format=f"%(asctime)s.%(msecs)03dZ %(levelname)s {where}%(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",  # ISO 8601 UTC, as every time spotline writes
        force=True,
    )
    for handler in logging.getLogger().handlers:
        if handler.formatter is not None:
            handler.formatter.converter = time.gmtime
    metrics = logging.getLogger("spotline.metrics")
    metrics.handlers.clear()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    metrics.addHandler(handler)
    metrics.propagate = False
    metrics.setLevel(logging.INFO)


def _config_file(env: SageMakerEnvironment) -> Path | None:
    if not env.has_channel("config"):
        return None
    channel = env.channel_dir("config")
    files = sorted(
        p
        for p in channel.rglob("*")
        if p.is_file() and p.suffix in CONFIG_SUFFIXES and not p.name.startswith(".")
    )
    if len(files) != 1:
        names = ", ".join(p.name for p in files) or "none"
        raise UserError(f"the config channel must hold exactly one .yaml/.yml file (found: {names})")
    return files[0]


def resolve_config(env: SageMakerEnvironment) -> ResolvedConfig:
    """The config channel's file (for inference, else the model's own), hyperparameters over it."""
    from spotline_container.inference import open_model_channel

    overrides = env.config_overrides
    path = _config_file(env)
    model_dir = None
    wants_inference = overrides.get("mode", "").strip() == "inference"
    if wants_inference or path is None:
        if path is None and not env.has_channel("model"):
            raise UserError("missing channel 'config' (one YAML run config)")
        model_dir = open_model_channel(env)
    data = path.read_bytes() if path is not None else (model_dir / EMBEDDED_CONFIG).read_bytes()  # type: ignore[operator]
    config = parse_run_config(data, overrides=overrides)
    document = apply_overrides(load_yaml_document(data), overrides)
    if config.mode == "inference" and model_dir is None:
        model_dir = open_model_channel(env)
    return ResolvedConfig(config, document, model_dir)


def run(env: SageMakerEnvironment, argv: list[str]) -> int:
    """Run the job described by ``env``; never raises, returns the exit status."""
    from spotline_container.inference import run_inference
    from spotline_container.train import run_training

    failure_path = Path(os.environ.get(WORKER_FAILURE_ENV) or env.failure_file)
    stop = StopRequest().install()
    ctx: DistContext | None = None
    try:
        resolved = resolve_config(env)
        log.info("job %s on %s: mode %s", env.job_name, env.current_host, resolved.config.mode)
        if not in_worker():
            plan = plan_launch(env)
            if plan.world_size > 1:
                code, text = launch_workers(plan, argv)
                if text:
                    failure_path.parent.mkdir(parents=True, exist_ok=True)
                    failure_path.write_text(text)
                return code
        ctx = init_process_group()
        threads = os.environ.get(THREADS_ENV, "")
        if threads.isdigit():
            torch.set_num_threads(int(threads))
        elif threads:
            log.warning(
                "%s=%r is neither a number nor 'auto': torch keeps its defaults", THREADS_ENV, threads
            )
        log.info(
            "%d CPU thread(s), OMP_WAIT_POLICY=%s",
            torch.get_num_threads(),
            os.environ.get("OMP_WAIT_POLICY", "(OpenMP default)"),
        )
        if resolved.config.mode == "inference":
            assert resolved.model_dir is not None
            run_inference(env, resolved.config, resolved.model_dir, ctx, lambda: stop.requested)
        else:
            run_training(env, resolved.config, resolved.document, ctx, stop)
        return 0
    except Interrupted as e:
        log.warning("%s; state saved, exiting", e)
        return SIGTERM_EXIT_CODE
    except ConfigError as e:
        write_failure(failure_path, USER_ERROR, f"invalid config: {e}")
    except UserError as e:
        write_failure(failure_path, USER_ERROR, str(e))
    except torch.OutOfMemoryError as e:
        write_failure(
            failure_path, USER_ERROR, f"out of GPU memory; lower solver.batch_size or input.size ({e})"
        )
    except Exception as e:
        log.exception("platform error")
        write_failure(failure_path, PLATFORM_ERROR, f"{type(e).__name__}: {e}")
    finally:
        stop.uninstall()
        if ctx is not None:
            shutdown(ctx)
    return 1


USAGE = "usage: python -m spotline_container train | synth OUT_DIR [options]"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    setup_logging()
    command = argv[0] if argv else "train"
    if command == "synth":
        from spotline_container.synthetic import main as synth_main

        return synth_main(argv[1:])
    if command != "train":
        log.error(USAGE)
        return 2
    try:
        env = SageMakerEnvironment.from_env()
    except (OSError, ValueError) as e:  # SageMaker's own files are unreadable
        base = Path(os.environ.get("SAGEMAKER_BASE_DIR") or "/opt/ml")
        write_failure(
            base / "output" / "failure", PLATFORM_ERROR, f"cannot read the SageMaker environment: {e}"
        )
        return 1
    return run(env, argv)
