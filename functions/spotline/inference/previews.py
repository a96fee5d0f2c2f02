"""Previews of a batch's worst findings: the image with its boxes drawn over it, as SVG.

SVG embeds the original image (base64) and draws the boxes as vector shapes, so the Lambda
needs no imaging library. A preview is a courtesy: an image that is gone, too large or of a
type browsers do not show is skipped, never a failed publish. The search is bounded: the
summary keeps only the :data:`MAX_SOURCE_READS` worst previewable findings, and at most that
many source images are read, whatever the batch holds.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from spotline.adapters.drop_bucket import DropBucket
from spotline.domain import layout

logger = logging.getLogger(__name__)

PREVIEWS = 4
MAX_SOURCE_READS = 3 * PREVIEWS
MAX_PREVIEW_SOURCE_BYTES = 8 * 1024 * 1024
BROWSER_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
}


def content_type_of(image: str) -> str | None:
    """The type a browser shows ``image`` as, or None for a type browsers do not show."""
    return BROWSER_TYPES.get("." + image.rsplit(".", 1)[-1].lower())


def is_previewable(image: str) -> bool:
    return content_type_of(image) is not None


def preview_svg(image: bytes, content_type: str, line: Mapping[str, Any]) -> bytes:
    """The image with its detections drawn over it, as a self-contained SVG."""
    width, height = int(line.get("width") or 1), int(line.get("height") or 1)
    stroke = max(2, round(max(width, height) / 400))
    font = max(12, round(max(width, height) / 60))
    href = f"data:{content_type};base64,{base64.b64encode(image).decode()}"
    findings = len(line.get("detections") or [])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}">',
        f"<title>{escape(str(line.get('image')))}: {findings} finding{'s' if findings != 1 else ''}</title>",
        f'<image href="{href}" x="0" y="0" width="{width}" height="{height}"/>',
    ]
    for d in line.get("detections") or []:
        x1, y1, x2, y2 = (float(v) for v in d["box"])
        label = escape(f"{d.get('class')} {float(d.get('score', 0)):.2f}")
        parts.append(
            f'<rect x="{x1:.1f}" y="{y1:.1f}" width="{x2 - x1:.1f}" height="{y2 - y1:.1f}" '
            f'fill="none" stroke="#ff2d2d" stroke-width="{stroke}"/>'
            f'<text x="{x1:.1f}" y="{max(y1 - stroke, font):.1f}" fill="#ff2d2d" font-size="{font}" '
            f'font-family="sans-serif">{label}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts).encode()


def write_previews(
    bucket: DropBucket, batch: str, prefix: str, worst: Iterable[Mapping[str, Any]]
) -> list[str]:
    """SVG previews of ``worst`` (lines with detections, worst first) under ``<prefix>previews/``."""
    written: list[str] = []
    reads = 0
    for line in worst:
        if len(written) >= PREVIEWS or reads >= MAX_SOURCE_READS:
            break
        image = str(line["image"])
        content_type = content_type_of(image)
        if content_type is None:
            continue
        reads += 1
        try:
            data = bucket.read(f"{layout.INFERENCE}{batch}/{image}", cap=MAX_PREVIEW_SOURCE_BYTES)
        except Exception as e:  # gone, too large or unreadable: previews are a courtesy
            logger.warning("no preview for %s: %s", image, e)
            continue
        key = f"{prefix}previews/{len(written) + 1:02d}.svg"
        bucket.put(key, preview_svg(data, content_type, line), "image/svg+xml")
        written.append(key)
    return written
