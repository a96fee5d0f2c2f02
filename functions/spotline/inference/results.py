"""A completed inference run becomes results a person can read: files, one message, one event.

The container leaves ``predictions.jsonl`` (one JSON line per image) and ``summary.json`` in the
job's ``model.tar.gz``. When every part of a batch's close has completed, this writes, under
``results/<batch>/`` (``results/<batch>/generation-<n>/`` for the batch's later generations):

* ``predictions.jsonl`` — every image of the close, in key order;
* ``summary.json`` — images, detections per class, the images with defects, the model's lineage;
* ``previews/NN.svg`` — the worst findings: the image with its boxes drawn over it (SVG, so the
  Lambda needs no imaging library);
* ``report.html`` — all of it on one self-contained page (:mod:`spotline.inference.report_page`),
  linked from the message (``report_page``, ``report_console``);

then one SNS message (subject ``<batch>: 37 of 5,000 images show defects``, filter attributes) and
one ``spotline`` event. A part of a multi-part close writes its own files under ``parts/`` first.
The job-state function calls :func:`publish_inference_completed` through the registry of
:mod:`spotline.runs.publish` (:func:`register`).
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any

from spotline.adapters.drop_bucket import DropBucket, ObjectTooLarge
from spotline.adapters.notifier import Notifier
from spotline.domain import layout
from spotline.domain.settings import Settings
from spotline.domain.timefmt import iso_utc
from spotline.inference.previews import worst_score, write_previews
from spotline.inference.report_page import write_batch_page
from spotline.ledger.batches import BatchLedger
from spotline.ledger.notices import Notices
from spotline.ledger.records import Run

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.jsonl"
SUMMARY_FILE = "summary.json"
MAX_LISTED_IN_MESSAGE = 100
MAX_LISTED_SKIPPED = 100  # summary.json lists this many skipped files of the folder, and counts them all
# The job's model.tar.gz is read into the job-state function's memory (512 MB): bounded, as are
# its members (a tar is walked member by member: count and declared bytes cap the work).
MAX_ARCHIVE_BYTES = 128 * 1024 * 1024
MAX_ARCHIVE_MEMBERS = 1_000
MAX_ARCHIVE_MEMBER_BYTES = 128 * 1024 * 1024
MAX_ARCHIVE_TOTAL_BYTES = 1024 * 1024 * 1024
DETAIL_TYPE = "Inference Batch Completed"


def results_prefix(batch: str, generation: int) -> str:
    base = layout.results_prefix(batch)
    return base if generation <= 1 else f"{base}generation-{generation}/"


def read_job_output(bucket: DropBucket, artifact_uri: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(prediction lines, container summary)`` from an inference job's ``model.tar.gz``."""
    try:
        data = bucket.read_uri(artifact_uri, cap=MAX_ARCHIVE_BYTES)
    except ObjectTooLarge as e:
        raise ValueError(str(e)) from e
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


@dataclass
class InferenceCompleted:
    """Writes a close's results once all its parts completed, and announces them once."""

    settings: Settings
    _: KW_ONLY
    batches: BatchLedger
    notices: Notices
    notifier: Notifier
    bucket: DropBucket
    clock: Callable[[], float] = time.time

    def _read_lines(self, key: str) -> list[dict[str, Any]]:
        raw = self.bucket.read(key, cap=MAX_ARCHIVE_MEMBER_BYTES)
        return [json.loads(r) for r in raw.splitlines() if r.strip()]

    def __call__(self, run: Run, describe: Mapping[str, Any], *, now: float) -> dict[str, Any]:
        """Handle one completed part; returns what goes into the run's report under ``results``."""
        part_of = run.inference
        if part_of is None:
            raise ValueError(f"run {run.run_id} is not an inference part")
        batch, generation, part, parts = part_of.batch, part_of.generation, part_of.part, part_of.parts
        artifact = str((describe.get("ModelArtifacts") or {}).get("S3ModelArtifacts") or "")
        lines, container_summary = read_job_output(self.bucket, artifact)
        prefix = results_prefix(batch, generation)
        if parts > 1:
            self.bucket.put_lines(f"{prefix}parts/part-{part:03d}/{PREDICTIONS_FILE}", lines)
        close = self.batches.mark_part_done(batch, generation, run.run_id)
        done = len(close.done_parts)
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
        model = part_of.model
        summary.update(
            {
                "model": {"uri": model.uri, "source": model.source.value, "lineage": dict(model.lineage)},
                "score_threshold": container_summary.get("score_threshold"),
                "runs": [p.run_id for p in close.parts] or [run.run_id],
                "images_folder": self.bucket.uri(f"{layout.INFERENCE}{batch}/"),
                "completed_at": iso_utc(self.clock()),
            }
        )
        summary["skipped"] = self.batches.skipped_files(batch, limit=MAX_LISTED_SKIPPED).view()
        worst = sorted((line for line in lines if line.get("detections")), key=worst_score, reverse=True)
        previews = write_previews(self.bucket, batch, prefix, worst)
        summary["previews"] = [self.bucket.uri(k) for k in previews]
        summary.update(write_batch_page(self.bucket, self.settings, prefix, summary, worst, now=self.clock()))
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
            "summary": self.bucket.uri(prefix + SUMMARY_FILE),
        }

    def _announce(self, summary: Mapping[str, Any], prefix: str) -> None:
        batch, generation = str(summary["batch"]), int(summary["generation"])
        listed = list(summary["defect_images"])[:MAX_LISTED_IN_MESSAGE]
        body = {
            **{k: v for k, v in summary.items() if k not in ("defect_images", "unreadable", "skipped")},
            "skipped_files": summary.get("skipped", {}).get("count", 0),  # listed in summary.json
            "defect_images": listed,
            "defect_images_listed": f"{len(listed)} of {summary['images_with_defects']}",
            "summary": self.bucket.uri(prefix + SUMMARY_FILE),
            "predictions": self.bucket.uri(prefix + PREDICTIONS_FILE),
        }

        def send() -> None:
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

        if not self.notices.of_batch(batch).send_once(f"results-g{generation}", send, now=self.clock()):
            logger.info("results of %s generation %d were already announced", batch, generation)
