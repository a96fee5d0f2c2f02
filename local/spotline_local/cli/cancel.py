"""``spotline cancel RUN``: stop a run's current job, or cancel the relaunch it is waiting for."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from spotline_local.cli.console import aws_call, out
from spotline_local.cli.targets import CliError, resolve_target


def cmd_cancel(args: argparse.Namespace) -> int:
    from spotline.runs.cancel import RunNotFound
    from spotline_local.cli.ledger_view import no_such_run

    target = resolve_target(args.stack, args.workdir)
    canceller = target.wiring().canceller
    try:
        outcome = aws_call(lambda: canceller.cancel(args.run, reason="cancelled by a person", stop_job=True))
    except RunNotFound as e:
        raise no_such_run(args.run) from e
    if outcome.action == "stopping":
        out(f"{outcome.run_id}: stopping job {outcome.job_name}; {outcome.detail}")
    elif outcome.action == "cancelled":
        out(f"{outcome.run_id}: {outcome.detail}")
    elif outcome.action == "launching":
        raise CliError(
            f"{outcome.run_id} is {outcome.status}: {outcome.detail}", "run the same command again"
        )
    else:
        out(f"{outcome.run_id}: nothing to cancel, {outcome.detail}")
    return 0


def register(sub: Any, with_target: Callable[[argparse.ArgumentParser], None]) -> None:
    cancel = sub.add_parser("cancel", help="stop a run's current job, or cancel the relaunch it waits for")
    cancel.add_argument("run")
    with_target(cancel)
    cancel.set_defaults(func=cmd_cancel)
