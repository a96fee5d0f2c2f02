"""``results/<batch>/report.html``: a completed batch's summary as a page, next to ``summary.json``.

:func:`write_batch_page` is called with the summary once it is complete: it reads the batch's
previews back (bounded: :data:`MAX_EMBEDDED_PREVIEW_BYTES` each, :data:`MAX_EMBEDDED_BYTES` in all;
a larger one is named, not embedded), renders the page and writes it. It returns the fields that
go into the summary and the alert (the page's S3 URI and console URL), or nothing when the page
could not be written (logged, never a failed publish).
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any

from spotline.adapters.drop_bucket import DropBucket
from spotline.domain import layout
from spotline.domain.settings import Settings
from spotline.domain.timefmt import iso_utc
from spotline.reports.batch_page import MAX_FINDINGS, BatchPage, Preview, render_batch_page
from spotline.reports.links import console_url, report_links

logger = logging.getLogger(__name__)

PAGE_FILE = "report.html"
MAX_EMBEDDED_PREVIEW_BYTES = 2 * 1024 * 1024
MAX_EMBEDDED_BYTES = 6 * 1024 * 1024
_TITLE = re.compile(rb"<title>([^<]{1,1000})</title>")


def _caption(svg: bytes, fallback: str) -> str:
    match = _TITLE.search(svg[:4096])
    return html.unescape(match.group(1).decode("utf-8", errors="replace")) if match else fallback


def _previews(bucket: DropBucket, uris: Iterable[str]) -> list[Preview]:
    previews, embedded = [], 0
    for uri in uris:
        name = uri.rsplit("/", 1)[-1]
        try:
            svg = bucket.read_uri(uri, cap=MAX_EMBEDDED_PREVIEW_BYTES)
        except Exception as e:  # gone or too large: named, not embedded
            logger.info("preview %s not embedded: %s", uri, e)
            previews.append(Preview(name, None, uri))
            continue
        if embedded + len(svg) > MAX_EMBEDDED_BYTES:
            previews.append(Preview(_caption(svg, name), None, uri))
            continue
        embedded += len(svg)
        previews.append(Preview(_caption(svg, name), svg, uri))
    return previews


def write_batch_page(
    bucket: DropBucket,
    settings: Settings,
    prefix: str,
    summary: Mapping[str, Any],
    findings: Iterable[Mapping[str, Any]],
    *,
    now: float,
) -> dict[str, str]:
    """Write ``<prefix>report.html``; ``{"report_page", "report_console"}``, or ``{}`` if it failed.

    ``findings``: prediction lines with detections, worst first (only the first few are read).
    """
    key = prefix + PAGE_FILE
    try:
        lineage = (summary.get("model") or {}).get("lineage") or {}
        model_run = str(lineage.get("run_id") or "")
        model_report = "../" * prefix.count("/") + layout.run_page_key(model_run) if model_run else None
        links = {
            "this page": bucket.uri(key),
            "this page in the S3 console": console_url(bucket.name, key, settings.region),
            "summary.json": bucket.uri(prefix + "summary.json"),
            "predictions.jsonl": bucket.uri(prefix + "predictions.jsonl"),
        }
        if model_run:
            links["the model's run report"] = console_url(
                bucket.name, layout.run_page_key(model_run), settings.region
            )
        page = BatchPage(
            summary=summary,
            generated_at=iso_utc(now),
            findings=list(islice(findings, MAX_FINDINGS)),
            previews=_previews(bucket, [str(u) for u in summary.get("previews") or ()]),
            model_report=model_report,
            links=links,
        )
        bucket.put(key, render_batch_page(page).encode(), "text/html; charset=utf-8")
    except Exception:  # a page is a courtesy: the results and their alert go on without it
        logger.exception("could not write the report page of %s", prefix)
        return {}
    return report_links(bucket.name, key, settings.region)
