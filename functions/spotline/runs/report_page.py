"""A run's report document (``report.json``) and its page (``report.html``), written side by side.

:func:`run_report_document` is what ``report.json`` holds, for a settled run and for a run still
going alike. :class:`RunPages` reads what the page needs besides it — the metrics file under the
run's checkpoints (its last :data:`~spotline.reports.metrics.MAX_METRICS_BYTES` only) and the
config as run (at most :data:`MAX_CONFIG_TEXT_BYTES`) — renders it and writes it next to the JSON.
A page is a courtesy: whatever goes wrong with it is logged, never a failed settlement.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spotline.adapters.drop_bucket import DropBucket, ObjectMissing, ObjectTooLarge, split_s3_uri
from spotline.domain import layout
from spotline.domain.savings import LostWork, RunSavings
from spotline.domain.settings import Settings
from spotline.domain.states import RunKind, RunStatus
from spotline.domain.timefmt import iso_utc
from spotline.ledger.records import Attempt, Run, Trial
from spotline.metric_names import METRICS_FILE
from spotline.reports.links import console_url, report_links
from spotline.reports.metrics import MAX_METRICS_BYTES, RunCurves, parse_metrics
from spotline.reports.run_page import RunPage, render_run_page

logger = logging.getLogger(__name__)

MAX_CONFIG_TEXT_BYTES = 256 * 1024
PAGE_CONTENT_TYPE = "text/html; charset=utf-8"


def run_report_document(
    run: Run,
    status: RunStatus,
    attempts: Sequence[Attempt],
    savings: RunSavings,
    *,
    reason: str = "",
    cap: str | None = None,
    final_metrics: Mapping[str, float] | None = None,
    model_artifact: str | None = None,
    results: Mapping[str, Any] | None = None,
    finished_at: str | None = None,
    work_lost: LostWork | None = None,
    trials: Sequence[Trial] = (),
) -> dict[str, Any]:
    """What ``runs/<run-id>/report.json`` holds (and the page shows).

    ``image`` is what the run's jobs ran; ``resumes`` whether its relaunches continue from the run's
    checkpoints; ``work_lost`` (when they do not) the training redone from zero and its estimated cost;
    a tuning run lists its ``trials``, whose costs add up to the savings' totals."""
    request = run.first_request or {}
    return {
        "run_id": run.run_id,
        "kind": run.kind.value,
        "status": status.value,
        "reason": reason,
        "cap": cap,
        "source": {"bucket": run.source.bucket, "key": run.source.key, "version": run.source.version},
        "config_snapshot": run.config_key,
        "created_at": run.created_at,
        "finished_at": finished_at,
        "final_metrics": dict(final_metrics or {}),
        "model_artifact": model_artifact,
        "attempts": [a.view() for a in attempts],
        **({"trials": [t.view() for t in trials]} if run.kind == RunKind.TUNING else {}),
        "savings": savings.to_dict(),
        "results": dict(results or {}),
        "image": (request.get("AlgorithmSpecification") or {}).get("TrainingImage"),
        "resumes": run.policy.resumes if run.policy else True,
        "work_lost": work_lost.to_dict() if work_lost else None,
    }


def metrics_location(run: Run, bucket: str) -> tuple[str, str]:
    """``(bucket, key)`` of the run's metrics file: under its own checkpoint URI, wherever that is."""
    uri = run.checkpoint_uri
    if uri:
        try:
            where, prefix = split_s3_uri(uri if uri.endswith("/") else uri + "/")
            return where, prefix + METRICS_FILE
        except ValueError:
            pass
    return bucket, layout.run_metrics_key(run.run_id, METRICS_FILE)


@dataclass
class RunPages:
    """Reads a run's page inputs from the bucket and writes ``runs/<run-id>/report.html``."""

    settings: Settings
    bucket: DropBucket

    def links(self, run_id: str) -> dict[str, str]:
        """The alert fields of the run's page: its S3 URI and its console URL."""
        return report_links(self.bucket.name, layout.run_page_key(run_id), self.settings.region)

    def curves(self, run: Run) -> RunCurves:
        where, key = metrics_location(run, self.bucket.name)
        try:
            data, truncated = self.bucket.read_tail(key, cap=MAX_METRICS_BYTES, bucket=where)
        except ObjectMissing:
            return RunCurves()
        return parse_metrics(data, truncated=truncated)

    def config(self, run: Run) -> tuple[str | None, str]:
        """``(config text, note)`` of the config snapshot the run was launched with."""
        if not run.config_key:
            return (
                None,
                "This run has no config snapshot (it was adopted from a job spotline did not launch).",
            )
        try:
            data = self.bucket.read(run.config_key, cap=MAX_CONFIG_TEXT_BYTES)
        except ObjectMissing:
            return None, f"The config snapshot {self.bucket.uri(run.config_key)} is gone."
        except ObjectTooLarge:
            return None, f"The config snapshot is larger than {MAX_CONFIG_TEXT_BYTES:,} bytes: not shown."
        return data.decode("utf-8", errors="replace"), f"From {self.bucket.uri(run.config_key)}."

    def page(self, run: Run, report: Mapping[str, Any], *, now: float) -> RunPage:
        config_text, config_note = self.config(run)
        json_key = layout.run_report_key(run.run_id)
        page_key = layout.run_page_key(run.run_id)
        return RunPage(
            report=report,
            curves=self.curves(run),
            generated_at=iso_utc(now),
            config_text=config_text,
            config_note=config_note,
            spot_market_emulated=self.settings.spot_market_emulated,
            links={
                "this page": self.bucket.uri(page_key),
                "this page in the S3 console": console_url(self.bucket.name, page_key, self.settings.region),
                "report.json": self.bucket.uri(json_key),
                "checkpoints": run.checkpoint_uri or layout.checkpoint_uri(self.bucket.name, run.run_id),
            },
        )

    def write(self, run: Run, report: Mapping[str, Any], *, now: float) -> str | None:
        """Render and write the page; its key, or None when it could not be written (logged)."""
        key = layout.run_page_key(run.run_id)
        try:
            html = render_run_page(self.page(run, report, now=now))
            self.bucket.put(key, html.encode(), PAGE_CONTENT_TYPE)
        except Exception:  # a page is a courtesy: the settlement and its alert go on without it
            logger.exception("could not write the report page of run %s", run.run_id)
            return None
        return key
