"""A completed inference run becomes results a person can read: files, one message, one event.

The container leaves ``predictions.jsonl`` (one JSON line per image) and ``summary.json`` in the
job's ``model.tar.gz``. When every part of a batch's close has completed, this writes, under
``results/<batch>/`` (``results/<batch>/generation-<n>/`` for the batch's later generations):

* ``predictions.jsonl`` — every image of the close, in key order;
* ``summary.json`` — images, detections per class, the images with defects, the model's lineage;
* ``previews/NN.svg`` — the worst findings: the image with its boxes drawn over it (SVG, so the
  Lambda needs no imaging library);

then one SNS message (subject ``<batch>: 37 of 5,000 images show defects``, filter attributes) and
one ``spotline`` event. A part of a multi-part close writes its own files under ``parts/`` first.
The job-state function calls :func:`publish_inference_completed` through the registry of
:mod:`spotline.publish` (:func:`register`).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

from spotline import layout
from spotline.drop_bucket import DropBucket
from spotline.ledger.batches import BatchLedger
from spotline.notify import Notifier
from spotline.publish import PublishContext
from spotline.settings import Settings
from spotline.timefmt import iso_utc

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.jsonl"
SUMMARY_FILE = "summary.json"
PREVIEWS = 4
MAX_PREVIEW_SOURCE_BYTES = 8 * 1024 * 1024
MAX_LISTED_IN_MESSAGE = 100
# The job's model.tar.gz is read into the job-state function's memory (512 MB): bounded, as are
# its members (a tar is walked member by member: count and declared bytes cap the work).
MAX_ARCHIVE_BYTES = 128 * 1024 * 1024
MAX_ARCHIVE_MEMBERS = 1_000
MAX_ARCHIVE_MEMBER_BYTES = 128 * 1024 * 1024
MAX_ARCHIVE_TOTAL_BYTES = 1024 * 1024 * 1024
DETAIL_TYPE = "Inference Batch Completed"
_BROWSER_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
}


def results_prefix(batch: str, generation: int) -> str:
    base = layout.results_prefix(batch)
    return base if generation <= 1 else f"{base}generation-{generation}/"


def read_job_output(s3: Any, artifact_uri: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(prediction lines, container summary)`` from an inference job's ``model.tar.gz``."""
    if not artifact_uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {artifact_uri!r}")
    bucket, _, key = artifact_uri[5:].partition("/")
    response = s3.get_object(Bucket=bucket, Key=key)
    body = response["Body"]
    try:
        if int(response.get("ContentLength") or 0) > MAX_ARCHIVE_BYTES:
            raise ValueError(f"{artifact_uri} is larger than {MAX_ARCHIVE_BYTES} bytes")
        data: bytes = body.read(MAX_ARCHIVE_BYTES + 1)
    finally:
        body.close()
    if len(data) > MAX_ARCHIVE_BYTES:
        raise ValueError(f"{artifact_uri} is larger than {MAX_ARCHIVE_BYTES} bytes")
    found: dict[str, bytes] = {}
    members = declared = 0
    # Members are only read into memory (extractfile), never written to disk: names cannot escape.
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in tar:  # streamed: getmembers() would index every member first
            members += 1
            declared += max(0, member.size)
            if members > MAX_ARCHIVE_MEMBERS or declared > MAX_ARCHIVE_TOTAL_BYTES:
                raise ValueError(
                    f"{artifact_uri} holds more than {MAX_ARCHIVE_MEMBERS} members or "
                    f"{MAX_ARCHIVE_TOTAL_BYTES} bytes: not an inference job's output"
                )
            name = member.name.rsplit("/", 1)[-1]
            if member.isfile() and name in (PREDICTIONS_FILE, SUMMARY_FILE):
                if member.size > MAX_ARCHIVE_MEMBER_BYTES:
                    raise ValueError(f"{member.name} is larger than {MAX_ARCHIVE_MEMBER_BYTES} bytes")
                handle = tar.extractfile(member)
                if handle is not None:
                    found[name] = handle.read(MAX_ARCHIVE_MEMBER_BYTES + 1)
    if PREDICTIONS_FILE not in found:
        raise ValueError(f"{artifact_uri} holds no {PREDICTIONS_FILE}: not an inference job's output")
    lines = [json.loads(raw) for raw in found[PREDICTIONS_FILE].splitlines() if raw.strip()]
    summary = json.loads(found[SUMMARY_FILE]) if SUMMARY_FILE in found else {}
    return lines, summary


def _worst_score(line: Mapping[str, Any]) -> float:
    return max((float(d.get("score", 0.0)) for d in line.get("detections") or ()), default=0.0)


def summarize(
    lines: Sequence[Mapping[str, Any]], *, batch: str, generation: int, classes: Sequence[str] = ()
) -> dict[str, Any]:
    """Counts over the prediction lines: what the summary, the subject and the message say."""
    per_class: Counter[str] = Counter({c: 0 for c in classes})
    with_defects: list[str] = []
    unreadable: list[str] = []
    for line in lines:
        if "error" in line:
            unreadable.append(str(line.get("image")))
            continue
        detections = line.get("detections") or []
        if detections:
            with_defects.append(str(line["image"]))
        per_class.update(str(d.get("class")) for d in detections)
    return {
        "batch": batch,
        "generation": generation,
        "images": len(lines),
        "images_with_defects": len(with_defects),
        "unreadable_images": len(unreadable),
        "detections": sum(per_class.values()),
        "detections_per_class": dict(per_class),
        "defect_images": with_defects,
        "unreadable": unreadable,
    }


def subject_for(summary: Mapping[str, Any]) -> str:
    """``rail-2026-11-27: 37 of 5,000 images show defects``."""
    batch = str(summary["batch"])
    generation = int(summary.get("generation", 1))
    label = batch if generation <= 1 else f"{batch} (#{generation})"
    n, total = int(summary["images_with_defects"]), int(summary["images"])
    verb = "shows" if n == 1 else "show"
    return f"{label}: {n:,} of {total:,} images {verb} defects"


def preview_svg(image: bytes, content_type: str, line: Mapping[str, Any]) -> bytes:
    """The image with its detections drawn over it, as a self-contained SVG."""
    width, height = int(line.get("width") or 1), int(line.get("height") or 1)
    stroke = max(2, round(max(width, height) / 400))
    font = max(12, round(max(width, height) / 60))
    href = f"data:{content_type};base64,{base64.b64encode(image).decode()}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}">',
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


class InferenceResults:
    """Writes a close's results once all its parts completed, and announces them once."""

    def __init__(
        self,
        settings: Settings,
        *,
        batches: BatchLedger,
        notifier: Notifier,
        s3: Any | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.batches = batches
        self.notifier = notifier
        self.bucket = DropBucket(settings, s3)
        self.clock = clock

    @property
    def s3(self) -> Any:
        return self.bucket.s3

    def _read_lines(self, key: str) -> list[dict[str, Any]]:
        raw = self.s3.get_object(Bucket=self.settings.bucket, Key=key)["Body"].read()
        return [json.loads(r) for r in raw.splitlines() if r.strip()]

    def publish(self, run: Mapping[str, Any], describe: Mapping[str, Any]) -> dict[str, Any]:
        """Handle one completed part; returns what goes into the run's report under ``results``."""
        batch, generation = str(run["batch"]), int(run.get("generation", 1))
        part, parts = int(run.get("part", 1)), int(run.get("parts", 1))
        artifact = str((describe.get("ModelArtifacts") or {}).get("S3ModelArtifacts") or "")
        lines, container_summary = read_job_output(self.s3, artifact)
        prefix = results_prefix(batch, generation)
        if parts > 1:
            self.bucket.put_lines(f"{prefix}parts/part-{part:03d}/{PREDICTIONS_FILE}", lines)
        close = self.batches.mark_part_done(batch, generation, str(run["run_id"]))
        done = len(close.get("done_parts") or ())
        if done < parts:
            return {"batch": batch, "part": part, "parts": parts, "parts_completed": done}
        if parts > 1:
            lines = [
                line
                for n in range(1, parts + 1)
                for line in self._read_lines(f"{prefix}parts/part-{n:03d}/{PREDICTIONS_FILE}")
            ]
        lines.sort(key=lambda line: str(line.get("image")))
        summary = summarize(
            lines, batch=batch, generation=generation, classes=container_summary.get("classes") or ()
        )
        model = dict(run.get("model") or {})
        summary.update(
            {
                "model": {
                    "uri": model.get("uri"),
                    "source": model.get("source"),
                    "lineage": model.get("lineage") or {},
                },
                "score_threshold": container_summary.get("score_threshold"),
                "runs": [p.get("run_id") for p in close.get("parts") or []] or [run["run_id"]],
                "images_folder": f"s3://{self.settings.bucket}/{layout.INFERENCE}{batch}/",
                "completed_at": iso_utc(self.clock()),
            }
        )
        previews = self._previews(batch, prefix, lines)
        summary["previews"] = [f"s3://{self.settings.bucket}/{k}" for k in previews]
        self.bucket.put_lines(prefix + PREDICTIONS_FILE, lines)
        self.bucket.put(
            prefix + SUMMARY_FILE,
            json.dumps(summary, indent=2, ensure_ascii=False, default=str).encode(),
            "application/json",
        )
        self._announce(summary, prefix)
        return {
            "batch": batch,
            "images": summary["images"],
            "images_with_defects": summary["images_with_defects"],
            "summary": f"s3://{self.settings.bucket}/{prefix}{SUMMARY_FILE}",
        }

    def _previews(self, batch: str, prefix: str, lines: Sequence[Mapping[str, Any]]) -> list[str]:
        """Annotated SVGs of the worst findings, highest score first (a preview never fails a publish)."""
        worst = sorted((line for line in lines if line.get("detections")), key=_worst_score, reverse=True)
        written: list[str] = []
        for line in worst:
            if len(written) >= PREVIEWS:
                break
            image = str(line["image"])
            content_type = _BROWSER_TYPES.get("." + image.rsplit(".", 1)[-1].lower())
            if content_type is None:
                continue
            try:
                obj = self.s3.get_object(
                    Bucket=self.settings.bucket, Key=f"{layout.INFERENCE}{batch}/{image}"
                )
                if int(obj.get("ContentLength", 0)) > MAX_PREVIEW_SOURCE_BYTES:
                    obj["Body"].close()
                    continue
                data = obj["Body"].read()
            except Exception as e:  # the image may be gone: previews are a courtesy
                logger.warning("no preview for %s: %s", image, e)
                continue
            key = f"{prefix}previews/{len(written) + 1:02d}.svg"
            self.bucket.put(key, preview_svg(data, content_type, line), "image/svg+xml")
            written.append(key)
        return written

    def _announce(self, summary: Mapping[str, Any], prefix: str) -> None:
        batch, generation = str(summary["batch"]), int(summary["generation"])
        notice = f"results-g{generation}"
        if not self.batches.claim_notice(batch, notice, self.clock()):
            logger.info("results of %s generation %d were already announced", batch, generation)
            return
        listed = list(summary["defect_images"])[:MAX_LISTED_IN_MESSAGE]
        body = {
            **{k: v for k, v in summary.items() if k not in ("defect_images", "unreadable")},
            "defect_images": listed,
            "defect_images_listed": f"{len(listed)} of {summary['images_with_defects']}",
            "summary": f"s3://{self.settings.bucket}/{prefix}{SUMMARY_FILE}",
            "predictions": f"s3://{self.settings.bucket}/{prefix}{PREDICTIONS_FILE}",
        }
        try:
            self.notifier.publish(
                subject_for(summary),
                body,
                {
                    "kind": "inference",
                    "status": "SUCCEEDED",
                    "batch": batch,
                    "defects": "yes" if summary["images_with_defects"] else "no",
                },
            )
            self.notifier.emit(DETAIL_TYPE, body)
        except Exception:
            self.batches.release_notice(batch, notice)
            raise


def publish_inference_completed(
    context: PublishContext, run: Mapping[str, Any], describe: Mapping[str, Any]
) -> dict[str, Any]:
    """What a completed inference run publishes (called by the job-state function's publisher)."""
    settings = context.settings
    results = InferenceResults(
        settings,
        batches=BatchLedger(context.table),
        notifier=Notifier(settings.topic_arn, settings.event_bus),
        s3=context.s3,
        clock=lambda: context.now,
    )
    return results.publish(run, describe)
