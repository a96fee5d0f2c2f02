"""``spotline logs RUN``: the container log of every attempt of a run, oldest first.

The lines come from CloudWatch Logs (log group ``/aws/sagemaker/TrainingJobs``, streams
``<job name>/...``), where SageMaker writes a job's output and where the local SageMaker writes it too:
the same command reads a local run and a deployed one.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from spotline_local.cli.console import aws_call, out
from spotline_local.cli.targets import CliError, resolve_target

LOG_GROUP = "/aws/sagemaker/TrainingJobs"  # where SageMaker writes every training job's output


def cmd_logs(args: argparse.Namespace) -> int:
    from spotline_local.cli.ledger_view import known_run, ledger

    target = resolve_target(args.stack, args.workdir)
    runs = ledger(target.table, target.client("dynamodb"))
    run = known_run(runs, args.run)
    attempts = aws_call(lambda: runs.attempts(args.run))
    if args.attempt is not None:
        attempts = [a for a in attempts if a.attempt == args.attempt]
        if not attempts:
            raise CliError(f"run {args.run} has no attempt {args.attempt}", f"`spotline status {args.run}`")
    if not attempts:
        why = "; ".join(run.errors) or run.reason or "no job was started"
        out(f"{run.run_id} is {run.status.value} and never ran a job: {why}")
        return 0
    logs = target.client("logs")
    for attempt in attempts:
        name = attempt.job_name
        lines: list[str] = aws_call(lambda: job_log_lines(logs, name))  # noqa: B023 - called at once
        ended = attempt.secondary_status or attempt.status.value
        out(
            f"== attempt {attempt.attempt}: {attempt.job_name} on {attempt.instance_type} "
            f"({'Spot' if attempt.spot else 'on-demand'}), {ended} - {len(lines)} line(s)"
        )
        for line in lines:
            out(line)
    return 0


def job_log_lines(logs: Any, job_name: str) -> list[str]:
    """Every line of the job's log streams (``<job name>/...``), oldest first."""
    lines: list[str] = []
    try:
        streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{job_name}/")
    except logs.exceptions.ResourceNotFoundException:
        return lines
    for stream in streams.get("logStreams", []):
        token = None
        while True:
            kwargs: dict[str, Any] = {
                "logGroupName": LOG_GROUP,
                "logStreamName": stream["logStreamName"],
                "startFromHead": True,
            }
            if token:
                kwargs["nextToken"] = token
            page = logs.get_log_events(**kwargs)
            lines.extend(e["message"] for e in page.get("events", []))
            if not page.get("events") or page.get("nextForwardToken") == token:
                break
            token = page.get("nextForwardToken")
    return lines


def register(sub: Any, with_target: Callable[[argparse.ArgumentParser], None]) -> None:
    logs = sub.add_parser("logs", help="the container log of every attempt of a run")
    logs.add_argument("run")
    logs.add_argument("--attempt", type=int, help="only this attempt (1, 2, ...)")
    with_target(logs)
    logs.set_defaults(func=cmd_logs)
