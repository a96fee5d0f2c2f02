"""``results/<batch>/report.html``: one inference batch on one page.

Counts per class; the images with the most and highest-scoring findings, their boxes drawn (the
batch's SVG previews, embedded as ``data:`` images); the images that could not be read; the model
and its lineage, with a link back to the report of the run that trained it. Lists are bounded
(:data:`MAX_LISTED`), whatever the batch holds.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spotline.reports.page import document, esc, finite, section, table

MAX_LISTED = 100
MAX_FINDINGS = 20


@dataclass(frozen=True)
class Preview:
    """A preview of one image: its SVG (boxes over the image), or None where it was too large to embed."""

    image: str
    svg: bytes | None
    uri: str = ""


@dataclass(frozen=True)
class BatchPage:
    summary: Mapping[str, Any]
    generated_at: str
    findings: Sequence[Mapping[str, Any]] = ()  # prediction lines with detections, worst first
    previews: Sequence[Preview] = ()
    model_report: str | None = None  # relative link to the model's run report.html
    links: Mapping[str, str] = field(default_factory=dict)


def _best(line: Mapping[str, Any]) -> float:
    scores = [finite(d.get("score")) for d in line.get("detections") or () if isinstance(d, Mapping)]
    return max((s for s in scores if s is not None), default=0.0)


def _counts(summary: Mapping[str, Any]) -> str:
    per_class = summary.get("detections_per_class") or {}
    if not per_class:
        return section("Findings per class", '<p class="note">No classes reported.</p>', anchor="classes")
    top = max([int(v) for v in per_class.values()] + [1])
    rows = []
    for name, count in sorted(per_class.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))[:MAX_LISTED]:
        width = round(100 * int(count) / top)
        bar = (
            f'<svg viewBox="0 0 100 8" preserveAspectRatio="none" style="height:8px" aria-hidden="true">'
            f'<rect width="{width}" height="8" fill="#cf222e"/></svg>'
        )
        rows.append([esc(name), f'<span data-class="{esc(name)}">{esc(count)}</span>', bar])
    return section(
        "Findings per class", table(("class", "findings", ""), rows, numeric=(1,)), anchor="classes"
    )


def _findings(page: BatchPage) -> str:
    rows = []
    for line in list(page.findings)[:MAX_FINDINGS]:
        detections = [d for d in line.get("detections") or () if isinstance(d, Mapping)]
        classes = sorted({str(d.get("class")) for d in detections})
        rows.append(
            [
                f'<span class="mono wrap">{esc(line.get("image"))}</span>',
                esc(len(detections)),
                esc(f"{_best(line):.2f}"),
                esc(", ".join(classes)),
            ]
        )
    gallery = []
    for preview in page.previews:
        if preview.svg is None:
            picture = '<p class="note">Too large to embed here; the preview is in S3 (below).</p>'
        else:
            data = base64.b64encode(preview.svg).decode()
            picture = (
                f'<img alt="{esc(preview.image)} with its findings boxed" '
                f'src="data:image/svg+xml;base64,{data}">'
            )
        gallery.append(
            f'<figure data-preview="{esc(preview.image)}">{picture}'
            f'<figcaption class="wrap">{esc(preview.image)}</figcaption>'
            + (f'<p class="note mono wrap">{esc(preview.uri)}</p>' if preview.uri else "")
            + "</figure>"
        )
    body = ""
    if gallery:
        body += f'<div class="gallery">{"".join(gallery)}</div>'
    if rows:
        body += table(("image", "findings", "best score", "classes"), rows, numeric=(1, 2))
    if not body:
        body = '<p class="note">No image shows a finding above the score threshold.</p>'
    return section("Images with the most and highest-scoring findings", body, anchor="findings")


def _unreadable(summary: Mapping[str, Any]) -> str:
    names = list(summary.get("unreadable") or ())
    count = int(summary.get("unreadable_images") or len(names))
    if not count:
        return section(
            "Images that could not be read", "<p>None: every image was read.</p>", anchor="unreadable"
        )
    items = "".join(f'<li class="mono wrap">{esc(n)}</li>' for n in names[:MAX_LISTED])
    more = (
        f'<p class="note">… and {count - MAX_LISTED:,} more (all in summary.json).</p>'
        if count > MAX_LISTED
        else ""
    )
    return section(
        "Images that could not be read",
        f"<p>{count:,} image{'s' if count != 1 else ''} could not be read and "
        f"{'were' if count != 1 else 'was'} left out:</p><ul>{items}</ul>{more}",
        anchor="unreadable",
    )


def _model(page: BatchPage) -> str:
    model = page.summary.get("model") or {}
    lineage = model.get("lineage") or {}
    rows = [
        ["model", f'<span class="mono wrap">{esc(model.get("uri") or "unknown")}</span>'],
        ["chosen by", esc(model.get("source") or "unknown")],
    ]
    for key in ("run_id", "config_key", "config_version", "job_name", "promoted_at"):
        if lineage.get(key):
            rows.append([esc(key.replace("_", " ")), f'<span class="mono wrap">{esc(lineage[key])}</span>'])
    gate = lineage.get("gate") or {}
    if gate:
        rows.append(
            ["promotion gate", esc(f"{gate.get('metric')} = {gate.get('value')} (needs ≥ {gate.get('min')})")]
        )
    if page.model_report:
        rows.append(
            [
                "trained in",
                f'<a data-field="model_report" href="{esc(page.model_report)}">the run report of '
                f"{esc(lineage.get('run_id') or 'the model')}</a>",
            ]
        )
    return section("Model and lineage", table(("", ""), rows, css="plain"), anchor="model")


def render_batch_page(page: BatchPage) -> str:
    """The page as one HTML string."""
    s = page.summary
    batch, generation = str(s.get("batch") or "batch"), int(s.get("generation") or 1)
    label = batch if generation <= 1 else f"{batch} (#{generation})"
    images, defects = int(s.get("images") or 0), int(s.get("images_with_defects") or 0)
    cards = [
        ("images", f'<span data-field="images">{images:,}</span>'),
        ("with findings", f'<span data-field="images_with_defects">{defects:,}</span>'),
        ("findings", esc(f"{int(s.get('detections') or 0):,}")),
        ("unreadable", esc(f"{int(s.get('unreadable_images') or 0):,}")),
        (
            "score threshold",
            esc(s.get("score_threshold") if s.get("score_threshold") is not None else "unknown"),
        ),
    ]
    header = (
        f"<h1>{esc(label)}</h1>"
        f"<p>{defects:,} of {images:,} image{'s' if images != 1 else ''} show findings.</p>"
        f'<p class="note">Completed {esc(s.get("completed_at") or "unknown")}; images from '
        f'<span class="mono wrap">{esc(s.get("images_folder") or "unknown")}</span></p>'
        '<div class="cards">'
        + "".join(f'<div class="card"><span class="note">{esc(k)}</span><b>{v}</b></div>' for k, v in cards)
        + "</div>"
    )
    links = ""
    if page.links:
        rows = [
            [
                esc(k),
                f'<a href="{esc(v)}" rel="noopener noreferrer">{esc(v)}</a>'
                if v.startswith("https://")
                else f'<span class="mono wrap">{esc(v)}</span>',
            ]
            for k, v in page.links.items()
        ]
        links = section("Where this lives", table(("", ""), rows, css="plain"), anchor="links")
    body = (
        f"<section>{header}</section>"
        + _counts(s)
        + _findings(page)
        + _unreadable(s)
        + _model(page)
        + links
        + f'<p class="note">Generated {esc(page.generated_at)} by spotline.</p>'
    )
    return document(f"{label} — spotline inference results", body)
