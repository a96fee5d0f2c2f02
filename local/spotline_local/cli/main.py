"""``spotline``: run the local stack, validate and submit configs, follow runs, fetch reports, the demo.

A user's mistake (a bad config, no stack running, a wrong run id) prints one line and a hint and
exits 2; a failed check exits 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from spotline_local.cli.targets import CliError, Target, resolve_target
from spotline_local.faults import FAULTS_ENV

DEFAULT_WORKDIR = Path(".spotline/local")
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED", "REJECTED")


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# -- local up ----------------------------------------------------------------------------------------


def cmd_local_up(args: argparse.Namespace) -> int:
    from spotline_local.faults import FaultsError, load_faults
    from spotline_local.stack import LocalStack, StackOptions

    try:
        faults = load_faults(args.faults or os.environ.get(FAULTS_ENV))
    except (FaultsError, OSError) as e:
        raise CliError(f"faults file: {e}", "see `spotline local up --help` for its format") from e
    parameters: dict[str, Any] = {}
    if args.settle_seconds is not None:
        parameters["BatchSettleSeconds"] = args.settle_seconds
    options = StackOptions(
        workdir=args.workdir,
        faults=faults,
        schedule_period_s=args.schedule_period,
        parameters=parameters,
        moto_port=args.port,
        sagemaker_port=args.sagemaker_port,
    )
    stack = LocalStack(options)
    stack.start()
    try:
        _out(f"spotline local stack is up (workdir {stack.workdir})")
        _out(f"  drop bucket  {stack.bucket}")
        _out(f"  ledger       {stack.table}")
        _out(f"  alert topic  {stack.topic_arn}")
        _out(f"  functions log {stack.workdir / 'logs' / 'functions.log'}")
        _out("\nPoint the AWS CLI and boto3 at it:\n")
        for name, value in stack.endpoint_env().items():
            _out(f"export {name}={value}")
        _out(f"\nthen e.g.  aws s3 cp my-config.yaml s3://{stack.bucket}/configs/   (Ctrl-C stops the stack)")
        stop = {"now": False}

        def request_stop(*_: object) -> None:
            stop["now"] = True

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)  # Ctrl-C, even where the shell started us ignoring it
        seen = 0
        while not stop["now"]:
            time.sleep(1)
            assert stack.alerts is not None
            messages = _aws(stack.alerts.poll)
            for message in messages[seen:]:
                _out(f"[alert] {message['subject']}")
            seen = len(messages)
    except KeyboardInterrupt:
        pass
    finally:
        _out("stopping the local stack...")
        stack.stop()
    return 0


# -- validate / submit ---------------------------------------------------------------------------------


def _read_config(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror}", "give the path of a YAML config file") from e


def _check(data: bytes, path: Path, drop_bucket: str | None) -> Any:
    from spotline.config import ConfigError, ValidationContext, parse_run_config

    try:
        return parse_run_config(data, ValidationContext(drop_bucket=drop_bucket))
    except ConfigError as e:
        _out(f"{path}: {len(e.issues)} problem{'s' if len(e.issues) > 1 else ''}")
        for issue in e.issues:
            _out(f"  - {issue}")
        return None


def cmd_validate(args: argparse.Namespace) -> int:
    config = _check(_read_config(args.config), args.config, args.bucket)
    if config is None:
        return 1
    job = config.job
    where = f"{job.instance_type} ({'Spot' if job.spot else 'on-demand'})"
    _out(
        f"{args.config}: valid - {config.mode}, {config.solver.max_iter} iterations on {where}, "
        f"up to {job.max_attempts} attempts"
    )
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from spotline.domain.naming import run_id_for_object

    target = resolve_target(args.stack, args.workdir)
    data = _read_config(args.config)
    if not args.no_validate and _check(data, args.config, target.bucket) is None:
        raise CliError("not submitted: the config is invalid", "fix the problems above (or --no-validate)")
    key = f"configs/{args.key or args.config.name}"
    if not key.lower().endswith((".yaml", ".yml")):
        raise CliError(f"{key} would not start a run", "config keys end in .yaml or .yml")
    response = _aws(lambda: target.client("s3").put_object(Bucket=target.bucket, Key=key, Body=data))
    version = response.get("VersionId") or str(response.get("ETag", "")).strip('"')
    run_id = run_id_for_object(target.bucket, key, version)
    _out(f"uploaded s3://{target.bucket}/{key} to the {target.label}; run id {run_id}")
    if args.wait:
        return 0 if wait_for_run(target, run_id, timeout_s=args.timeout) in ("SUCCEEDED",) else 1
    _out(f"follow it with: spotline status {run_id}")
    return 0


def wait_for_run(target: Target, run_id: str, *, timeout_s: float, quiet: bool = False) -> str:
    """Poll the ledger until the run is terminal, printing each change; returns its status."""
    from spotline_local.cli.ledger_view import ledger

    runs = ledger(target.table, target.client("dynamodb"))
    deadline = time.time() + timeout_s
    last = ""
    while time.time() < deadline:
        run = _aws(lambda: runs.get_run(run_id))
        status = run.status.value if run else "WAITING"
        line = f"{status} attempt {run.attempt}" if run else "waiting for the launch function"
        if line != last and not quiet:
            _out(f"  {time.strftime('%H:%M:%S')}  {run_id}: {line}")
            last = line
        if status in TERMINAL:
            return status
        time.sleep(1)
    raise CliError(f"run {run_id} did not finish within {timeout_s:.0f} s", "check `spotline status` later")


def _aws(call: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    try:
        return call()
    except EndpointConnectionError as e:
        raise CliError(
            f"cannot reach {e.kwargs.get('endpoint_url')}", "is `spotline local up` still running?"
        ) from e
    except NoCredentialsError as e:
        raise CliError("no AWS credentials", "configure them, or use the local stack") from e
    except (ClientError, BotoCoreError) as e:
        raise CliError(str(e), "check the stack name and your permissions") from e


# -- status / report -----------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    from spotline.ledger.table import LedgerTable
    from spotline_local.cli.ledger_view import ledger, recent, run_detail, run_view, runs_table

    target = resolve_target(args.stack, args.workdir)
    dynamodb = target.client("dynamodb")
    runs = ledger(target.table, dynamodb)
    if args.watch:
        return _watch(target, runs, args.run)
    if args.run:
        run = _aws(lambda: runs.get_run(args.run))
        if run is None:
            raise CliError(f"no run {args.run!r} in the ledger", "`spotline status` lists the runs")
        _out(run_detail(_aws(lambda: run_view(runs, run)), LedgerTable(target.table, dynamodb)))
        return 0
    views = _aws(lambda: recent(runs, args.limit))
    _out(runs_table(views) if views else "no runs yet - submit a config with `spotline submit CONFIG`")
    return 0


def _watch(target: Target, runs: Any, only: str | None) -> int:
    from rich.console import Console

    from spotline.adapters.drop_bucket import DropBucket
    from spotline.runs.report_page import RunPages
    from spotline_local.cli.live import watch
    from spotline_local.cli.pages import target_settings

    settings = target_settings(target)
    pages = RunPages(settings, DropBucket(settings, target.client("s3")))
    return int(_aws(lambda: watch(runs, pages.curves, console=Console(), only=only)))


def cmd_report(args: argparse.Namespace) -> int:
    from spotline.adapters.drop_bucket import ObjectMissing
    from spotline_local.cli.ledger_view import ledger
    from spotline_local.cli.pages import fetch_page, open_page

    target = resolve_target(args.stack, args.workdir)
    runs = ledger(target.table, target.client("dynamodb"))
    run = _aws(lambda: runs.get_run(args.run))
    if run is None:
        raise CliError(f"no run {args.run!r} in the ledger", "`spotline status` lists the runs")
    try:
        page = _aws(lambda: fetch_page(target, runs, run, args.out))
    except ObjectMissing as e:
        raise CliError(f"{e} is not written yet", "its batch has not completed: try again later") from e
    how = (
        "rendered now (the run is still going)"
        if page.fresh
        else f"fetched from s3://{target.bucket}/{page.key}"
    )
    _out(f"wrote {page.path} - {how}")
    if args.open and not open_page(page.path):
        _out(f"no browser to show it here: open {page.path.resolve()}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from spotline_local.cli.demo import run_demo

    return run_demo(out_dir=args.out, workdir=args.workdir)


# -- parser --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spotline", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the local stack does")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_target(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--stack", help="a deployed spotline stack (CloudFormation name); default: the local stack"
        )
        p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="the local stack's folder")

    local = sub.add_parser("local", help="the local stack").add_subparsers(
        dest="local_command", required=True
    )
    up = local.add_parser("up", help="run moto, the local SageMaker and the functions in the foreground")
    up.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    up.add_argument(
        "--faults",
        type=Path,
        help=f"faults file (YAML): Spot interruptions, capacity errors... (or ${FAULTS_ENV})",
    )
    up.add_argument("--port", type=int, help="moto's port (default: a free one)")
    up.add_argument("--sagemaker-port", type=int, default=0, help="the local SageMaker's port")
    up.add_argument("--schedule-period", type=float, default=10.0, help="seconds between scheduled runs")
    up.add_argument("--settle-seconds", type=int, help="BatchSettleSeconds of the template (default 120)")
    up.set_defaults(func=cmd_local_up)

    validate = sub.add_parser("validate", help="check a config offline, with the launch function's own rules")
    validate.add_argument("config", type=Path)
    validate.add_argument("--bucket", help="the drop bucket's name (checks s3:// channels against it)")
    validate.set_defaults(func=cmd_validate)

    submit = sub.add_parser("submit", help="upload a config under configs/ of the drop bucket")
    submit.add_argument("config", type=Path)
    submit.add_argument("--key", help="name under configs/ (default: the file's name)")
    submit.add_argument(
        "--no-validate", action="store_true", help="upload even if invalid (it will be rejected)"
    )
    submit.add_argument("--wait", action="store_true", help="follow the run until it ends")
    submit.add_argument("--timeout", type=float, default=3600.0)
    with_target(submit)
    submit.set_defaults(func=cmd_submit)

    status = sub.add_parser("status", help="runs, attempts, instance types, outcomes and savings")
    status.add_argument("run", nargs="?")
    status.add_argument("--limit", type=int, default=20)
    status.add_argument(
        "--watch", action="store_true", help="progress bars of the active runs, refreshed until they settle"
    )
    with_target(status)
    status.set_defaults(func=cmd_status)

    report = sub.add_parser("report", help="a run's report.html (its batch's, for an inference run)")
    report.add_argument("run")
    report.add_argument(
        "--out", type=Path, default=Path(".spotline/reports"), help="folder (the bucket's layout inside)"
    )
    report.add_argument("--open", action="store_true", help="open it in a browser, where one can be shown")
    with_target(report)
    report.set_defaults(func=cmd_report)

    demo = sub.add_parser("demo", help="the whole story on synthetic rail images, in a few minutes")
    demo.add_argument("--out", type=Path, default=Path("demo-output"))
    demo.add_argument("--workdir", type=Path, default=Path(".spotline/demo"))
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        for noisy in ("botocore", "werkzeug", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except CliError as e:
        sys.stderr.write(f"spotline: error: {e.message}\n")
        if e.hint:
            sys.stderr.write(f"  hint: {e.hint}\n")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
