"""``spotline local up`` and ``spotline local down``: one local stack per workdir, in the foreground."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

from spotline_local.cli.console import aws_call, out, stop_requests
from spotline_local.cli.targets import DEFAULT_WORKDIR, WORKDIR_ENV, CliError, find_workdir
from spotline_local.faults import FAULTS_ENV

DOWN_TIMEOUT_S = 90.0  # the stack gives its jobs 30 s to checkpoint, then stops moto


def cmd_local_up(args: argparse.Namespace) -> int:
    from spotline_local.faults import FaultsError, load_faults
    from spotline_local.images import IMAGES_ENV, ImagesError, load_images
    from spotline_local.owned_folder import ForeignFolder
    from spotline_local.stack import LocalStack, StackOptions
    from spotline_local.stack_lock import StackRunning

    try:
        faults = load_faults(args.faults or os.environ.get(FAULTS_ENV))
    except (FaultsError, OSError) as e:
        raise CliError(f"faults file: {e}", "see `spotline local up --help` for its format") from e
    try:
        images = load_images(args.images or os.environ.get(IMAGES_ENV))
    except ImagesError as e:
        raise CliError(f"images file: {e}", "see docs/bring-your-own-container.md for its format") from e
    parameters: dict[str, Any] = {}
    if args.settle_seconds is not None:
        parameters["BatchSettleSeconds"] = args.settle_seconds
    options = StackOptions(
        workdir=args.workdir,
        faults=faults,
        images=images,
        schedule_period_s=args.schedule_period,
        parameters=parameters,
        moto_port=args.port,
        sagemaker_port=args.sagemaker_port,
    )
    stack = LocalStack(options)
    with stop_requests() as stop:
        try:
            stack.start()
        except StackRunning as e:
            raise CliError(str(e), f"stop it with `spotline local down --workdir {args.workdir}`") from e
        except ForeignFolder as e:
            raise CliError(str(e), "give the stack a folder of its own with --workdir") from e
        try:
            _print_banner(stack)
            seen = 0
            while "signum" not in stop:
                time.sleep(1)
                assert stack.alerts is not None
                messages = aws_call(stack.alerts.poll)
                for message in messages[seen:]:
                    out(f"[alert] {message['subject']}")
                seen = len(messages)
        finally:
            out("stopping the local stack...")
            stack.stop()
            out("stopped")
    return 0


def _print_banner(stack: Any) -> None:
    out(f"spotline local stack is up (workdir {stack.workdir})")
    out(f"  drop bucket   {stack.bucket}")
    out(f"  ledger        {stack.table}")
    out(f"  alert topic   {stack.topic_arn}")
    out(f"  functions log {stack.workdir / 'logs' / 'functions.log'}")
    out("\nPoint the AWS CLI and boto3 at it:\n")
    for name, value in {**stack.endpoint_env(), WORKDIR_ENV: str(stack.workdir)}.items():
        out(f"export {name}={value}")
    out(f"\nthen e.g.  aws s3 cp my-config.yaml s3://{stack.bucket}/configs/")
    out("Alerts print here as they arrive; from another terminal: spotline alerts --follow")
    out("State lives in memory: stopping the stack forgets its buckets, runs and jobs. Ctrl-C stops it.")


def cmd_local_down(args: argparse.Namespace) -> int:
    from spotline_local.stack import STATE_FILE
    from spotline_local.stack_lock import holder

    workdir = find_workdir(args.workdir)
    running = holder(workdir)
    if running is None:
        stale = workdir / STATE_FILE
        if stale.is_file():
            stale.unlink()
            out(f"no local stack runs in {workdir} (removed the {STATE_FILE} its last stack left behind)")
        else:
            out(f"no local stack runs in {workdir}")
        return 0
    pid = int(running.get("pid") or 0)
    if pid <= 0:
        raise CliError(f"the lock of {workdir} does not say which process holds it", "is it being started?")
    out(f"stopping the local stack in {workdir} (pid {pid})...")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + DOWN_TIMEOUT_S
    while holder(workdir) is not None:
        if time.monotonic() > deadline:
            raise CliError(
                f"pid {pid} still holds {workdir} after {DOWN_TIMEOUT_S:.0f} s",
                f"`kill -KILL {pid}` ends it and everything it started",
            )
        time.sleep(0.2)
    out("stopped")
    return 0


def register(sub: Any) -> None:
    """The ``local`` command group."""
    local = sub.add_parser("local", help="the local stack").add_subparsers(
        dest="local_command", required=True
    )
    up = local.add_parser("up", help="run moto, the local SageMaker and the functions in the foreground")
    up.add_argument(
        "--workdir", type=Path, default=DEFAULT_WORKDIR, help="the stack's folder (one stack each)"
    )
    up.add_argument(
        "--faults",
        type=Path,
        help=f"faults file (YAML): Spot interruptions, capacity errors... (or ${FAULTS_ENV})",
    )
    up.add_argument(
        "--images",
        type=Path,
        help="images file (YAML): image URI -> the local command that runs it (or $SPOTLINE_LOCAL_IMAGES)",
    )
    up.add_argument("--port", type=int, help="moto's port (default: a free one)")
    up.add_argument("--sagemaker-port", type=int, default=0, help="the local SageMaker's port")
    up.add_argument("--schedule-period", type=float, default=10.0, help="seconds between scheduled runs")
    up.add_argument("--settle-seconds", type=int, help="BatchSettleSeconds of the template (default 120)")
    up.set_defaults(func=cmd_local_up)
    down = local.add_parser("down", help="stop the local stack that runs in a workdir (from any terminal)")
    down.add_argument("--workdir", type=Path, help=f"default: ${WORKDIR_ENV}, or the one found from here")
    down.set_defaults(func=cmd_local_down)
