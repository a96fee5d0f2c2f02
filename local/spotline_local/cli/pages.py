"""``spotline report RUN [--open]``: a run's ``report.html`` (or its batch's), fetched or rendered fresh.

A settled run's page is fetched from the bucket as published. A run still going is rendered here,
from the ledger and its metrics file, with the same code the functions use — so the page can be
refreshed while the run goes on. Pages land under ``.spotline/reports/`` in the bucket's own
layout (``runs/<id>/report.html``, ``results/<batch>/report.html``), so their links to each other
work on disk too. ``--open`` hands the file to a browser only where one can be shown: with
``$BROWSER`` set, a display, or on macOS or Windows; elsewhere (CI, SSH, tests) it prints the path.
"""

from __future__ import annotations

import os
import sys
import time
import webbrowser
from dataclasses import dataclass
from pathlib import Path

from spotline.adapters.drop_bucket import DropBucket, ObjectMissing
from spotline.domain import layout
from spotline.domain.prices import price_table
from spotline.domain.savings import run_savings
from spotline.domain.settings import Settings
from spotline.domain.states import TERMINAL_RUN_STATES, RunKind
from spotline.inference.report_page import PAGE_FILE
from spotline.inference.results import results_prefix
from spotline.ledger.records import Run
from spotline.ledger.runs import RunLedger
from spotline.reports.run_page import render_run_page
from spotline.runs.report_page import RunPages, run_report_document
from spotline_local.cli.targets import Target

DEFAULT_DIR = Path(".spotline/reports")
MAX_PAGE_BYTES = 32 * 1024 * 1024


def target_settings(target: Target) -> Settings:
    """What the page code needs of a deployment's settings: its bucket, region and Spot market."""
    return Settings(
        bucket=target.bucket,
        table=target.table,
        topic_arn=target.topic_arn or "",
        image_uri="",
        execution_role_arn="",
        job_prefix="spotline",
        region=target.region,
        spot_market_emulated=target.is_local,
    )


@dataclass(frozen=True)
class FetchedPage:
    path: Path
    key: str
    fresh: bool  # rendered here from a run still going, not fetched as published


def page_key(run: Run) -> str:
    """Where the page of ``run`` is published: its batch's page for an inference run."""
    part = run.inference
    if run.kind == RunKind.INFERENCE and part is not None:
        return results_prefix(part.batch, part.generation) + PAGE_FILE
    return layout.run_page_key(run.run_id)


def fetch_page(target: Target, runs: RunLedger, run: Run, out_dir: Path = DEFAULT_DIR) -> FetchedPage:
    """The page of ``run`` on disk: fetched when published, rendered now for a run still going."""
    settings = target_settings(target)
    bucket = DropBucket(settings, target.client("s3"))
    key = page_key(run)
    path = out_dir / key
    path.parent.mkdir(parents=True, exist_ok=True)
    if run.status in TERMINAL_RUN_STATES or run.kind == RunKind.INFERENCE:
        try:
            path.write_bytes(bucket.read(key, cap=MAX_PAGE_BYTES))
            return FetchedPage(path, key, fresh=False)
        except ObjectMissing:
            if run.kind == RunKind.INFERENCE:
                raise
    attempts = runs.attempts(run.run_id)
    savings = run_savings(attempts, price_table(), run.policy.instance_count if run.policy else 1)
    report = run_report_document(run, run.status, attempts, savings, reason=run.reason, cap=run.cap)
    page = RunPages(settings, bucket).page(run, report, now=time.time())
    path.write_text(render_run_page(page), encoding="utf-8")
    return FetchedPage(path, key, fresh=True)


def can_show_a_browser() -> bool:
    if os.environ.get("BROWSER"):
        return True
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def open_page(path: Path) -> bool:
    """Hand ``path`` to a browser where one can be shown; False (nothing launched) elsewhere."""
    if not can_show_a_browser():
        return False
    return bool(webbrowser.open(path.resolve().as_uri()))
