"""``spotline``: run the local stack, validate and submit configs, follow runs, fetch reports, the demo.

A user's mistake (a bad config, no stack running, a wrong run id) prints one line and a hint and
exits 2; a failed check exits 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from spotline_local.cli import alerts, cancel, local_stack, logs
from spotline_local.cli.console import Interrupted, stop_signals_interrupt
from spotline_local.cli.console import aws_call as _aws
from spotline_local.cli.console import out as _out
from spotline_local.cli.targets import CliError, Target, resolve_target

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED", "REJECTED")


# -- validate / submit ---------------------------------------------------------------------------------


def _read_config(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror}", "give the path of a YAML config file") from e


def _check(data: bytes, path: Path, drop_bucket: str | None) -> Any:
    """The launch function's own verdict on a file to be dropped under ``configs/``: the same
    schema, the same price table (``SPOTLINE_PRICES`` overrides it, as in the deployment)."""
    from spotline.config import ConfigError, ValidationContext, parse_run_config
    from spotline.domain.prices import PriceTableError, price_table

    try:
        prices = price_table(os.environ.get("SPOTLINE_PRICES"))
    except PriceTableError as e:
        raise CliError(str(e), "fix or unset SPOTLINE_PRICES") from e
    context = ValidationContext(
        drop_bucket=drop_bucket, priced_instance_types=frozenset(prices), dropped_config=True
    )
    try:
        return parse_run_config(data, context)
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
    what = f"{config.solver.max_iter} iterations" if job.image is None else f"image {job.image}"
    _out(f"{args.config}: valid - {config.mode}, {what} on {where}, up to {job.max_attempts} attempts")
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
    from spotline.domain.timefmt import iso_utc
    from spotline_local.cli.ledger_view import ledger

    runs = ledger(target.table, target.client("dynamodb"))
    deadline = time.time() + timeout_s
    last = ""
    while time.time() < deadline:
        run = _aws(lambda: runs.get_run(run_id))
        status = run.status.value if run else "WAITING"
        line = f"{status} attempt {run.attempt}" if run else "waiting for the launch function"
        if line != last and not quiet:
            _out(f"  {iso_utc(time.time())}  {run_id}: {line}")
            last = line
        if status in TERMINAL:
            return status
        time.sleep(1)
    raise CliError(f"run {run_id} did not finish within {timeout_s:.0f} s", "check `spotline status` later")


# -- status / report -----------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    from spotline.ledger.table import LedgerTable
    from spotline_local.cli.ledger_view import known_run, ledger, recent, run_detail, run_view, runs_table

    target = resolve_target(args.stack, args.workdir)
    dynamodb = target.client("dynamodb")
    runs = ledger(target.table, dynamodb)
    if args.watch:
        return _watch(target, runs, args.run)
    if args.run:
        run = known_run(runs, args.run)
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
    from spotline_local.cli.ledger_view import known_run, ledger
    from spotline_local.cli.pages import fetch_page, open_page

    target = resolve_target(args.stack, args.workdir)
    runs = ledger(target.table, target.client("dynamodb"))
    run = known_run(runs, args.run)
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
    from spotline_local.cli.demo import DemoRefused, run_demo

    try:
        return run_demo(out_dir=args.out, workdir=args.workdir, stall_s=args.stall_timeout)
    except DemoRefused as e:
        raise CliError(str(e), "spotline only ever replaces files it wrote itself") from e


# -- parser --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spotline", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the local stack does")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_target(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--stack", help="a deployed spotline stack (CloudFormation name); default: the local stack"
        )
        p.add_argument(
            "--workdir", type=Path, help="the local stack's folder (default: the running one found from here)"
        )

    local_stack.register(sub)
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
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("demo-output"),
        help="pictures and summary.json (a folder of its own)",
    )
    demo.add_argument("--workdir", type=Path, default=Path(".spotline/demo"), help="the demo's local stack")
    demo.add_argument(
        "--stall-timeout",
        type=float,
        default=180.0,
        help="give up when nothing has moved for this many seconds (a slow machine only makes it slower)",
    )
    demo.set_defaults(func=cmd_demo)
    for group in (logs, cancel, alerts):
        group.register(sub, with_target)
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
        with stop_signals_interrupt():
            return int(args.func(args) or 0)
    except CliError as e:
        sys.stderr.write(f"spotline: error: {e.message}\n")
        if e.hint:
            sys.stderr.write(f"  hint: {e.hint}\n")
        return 2
    except KeyboardInterrupt as e:
        code, why = (e.exit_code, str(e)) if isinstance(e, Interrupted) else (130, "Ctrl-C")
        sys.stderr.write(f"spotline: interrupted ({why}); everything it started has stopped\n")
        return code


if __name__ == "__main__":
    sys.exit(main())
