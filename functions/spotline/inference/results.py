"""Inference parts that ended become a batch's results: files, one message, one event.

Each part of a close is one inference job (:mod:`spotline.inference.job_output` reads what it
left). A part that completes writes its sorted lines under ``results/<batch>/parts/`` (when the
close has more than one part) and joins the close's completed parts; a part that fails for good
(FAILED or CANCELLED: the ladder gave up, SageMaker refused it, a person stopped it) joins its
failed parts. The invocation that finds every part ended writes, under ``results/<batch>/``
(``results/<batch>/generation-<n>/`` for the batch's later generations):

* ``predictions.jsonl`` — every image of the completed parts, in key order, streamed part after
  part into one object (a multipart upload once it outgrows one part): the parts are consecutive
  runs of the batch's sorted keys, so nothing needs sorting across parts;
* ``missing.jsonl`` — when parts failed: each image of theirs (from the part's manifest) and why;
* ``summary.json`` — counts, the first images with defects (the rest counted), the missing
  parts, the model's lineage (:mod:`spotline.inference.summary`: bounded state);
* ``previews/NN.svg`` — the worst findings (:mod:`spotline.inference.previews`);
* ``report.html`` — all of it on one self-contained page (:mod:`spotline.inference.report_page`),
  linked from the message (``report_page``, ``report_console``);

then one SNS message (subject ``<batch>: 37 of 5,000 images show defects``, filter attributes;
none when no part completed: each part alerted its own failure) and one ``spotline`` event.
Whatever order the parts end in, and however often their events arrive, the batch is announced
once. What one invocation holds is one part (at most ``BatchMaxImages`` images) and an upload
buffer, not the batch.

The job-state function calls :class:`InferenceCompleted` and :class:`InferenceFailed` through the
per-kind plug-ins of :mod:`spotline.runs.publish`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any

from spotline.adapters.drop_bucket import DropBucket, ObjectMissing, ObjectWriter
from spotline.adapters.notifier import Notifier
from spotline.domain import layout
from spotline.domain.settings import Settings
from spotline.domain.states import RunStatus
from spotline.domain.timefmt import iso_utc
from spotline.inference.job_output import (
    MAX_PREDICTIONS_BYTES,
    MAX_SUMMARY_BYTES,
    PREDICTIONS_FILE,
    SUMMARY_FILE,
    PartOutput,
    container_settings,
    read_part_output,
)
from spotline.inference.previews import MAX_SOURCE_READS, is_previewable, write_previews
from spotline.inference.report_page import write_batch_page
from spotline.inference.summary import BatchSummary, MissingPart
from spotline.ledger.batches import BatchLedger
from spotline.ledger.notices import Notices
from spotline.ledger.records import BatchClose, ClosePart, InferencePart, Run
from spotline.ledger.runs import RunLedger
from spotline.reports.batch_page import MAX_FINDINGS

logger = logging.getLogger(__name__)

MISSING_FILE = "missing.jsonl"
MAX_LISTED_IN_MESSAGE = 100
MAX_LISTED_SKIPPED = 100  # summary.json lists this many skipped files of the folder, and counts them all
MAX_PARTS_IN_MESSAGE = 10
MAX_REASON_CHARS = 300
# A part's manifest: at most BatchMaxImages keys of at most 1 KiB each, and its JSON.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
DETAIL_TYPE = "Inference Batch Completed"


def results_prefix(batch: str, generation: int) -> str:
    base = layout.results_prefix(batch)
    return base if generation <= 1 else f"{base}generation-{generation}/"


def part_prefix(prefix: str, part: int) -> str:
    return f"{prefix}parts/part-{part:03d}/"


def batch_status(summary: Mapping[str, Any]) -> str:
    """SUCCEEDED (every image has a result), PARTIAL (some parts failed) or FAILED (all did)."""
    if not summary["missing_images"]:
        return RunStatus.SUCCEEDED.value
    return "PARTIAL" if summary["images"] else RunStatus.FAILED.value


def subject_for(summary: Mapping[str, Any]) -> str:
    """``rail-2026-11-27: 37 of 5,000 images show defects`` (and how many have no result)."""
    batch = str(summary["batch"])
    generation = int(summary.get("generation", 1))
    label = batch if generation <= 1 else f"{batch} (#{generation})"
    n, total, missing = (
        int(summary["images_with_defects"]),
        int(summary["images"]),
        int(summary.get("missing_images", 0)),
    )
    if not total and missing:
        return f"{label}: no results, {missing:,} images missing"
    verb = "shows" if n == 1 else "show"
    tail = f", {missing:,} missing" if missing else ""
    return f"{label}: {n:,} of {total:,} images {verb} defects{tail}"


def _part_of(run: Run) -> InferencePart:
    if run.inference is None:
        raise ValueError(f"run {run.run_id} is not an inference part")
    return run.inference


@dataclass
class BatchResults:
    """Publishes a close once every one of its parts has ended, and announces it once."""

    settings: Settings
    _: KW_ONLY
    batches: BatchLedger
    ledger: RunLedger
    notices: Notices
    notifier: Notifier
    bucket: DropBucket
    clock: Callable[[], float] = time.time

    def part_ended(
        self,
        run: Run,
        close: BatchClose,
        *,
        output: PartOutput | None = None,
        failure: tuple[RunStatus, str] | None = None,
    ) -> dict[str, Any]:
        """After ``run`` joined the close's completed parts (with its ``output``) or its failed ones
        (with its ``failure``: status and reason, which its run record may not show yet)."""
        part_of = _part_of(run)
        if not close.settled:
            return {
                "batch": part_of.batch,
                "part": part_of.part,
                "parts": len(close.parts),
                "parts_completed": len(close.done_parts),
                "parts_failed": len(close.failed_parts - close.done_parts),
            }
        summary = self.publish(
            close,
            outputs={run.run_id: output} if output is not None else {},
            failures={run.run_id: failure} if failure is not None else {},
        )
        prefix = results_prefix(close.batch, close.generation)
        return {
            "batch": close.batch,
            "images": summary["images"],
            "images_with_defects": summary["images_with_defects"],
            "missing_images": summary["missing_images"],
            "summary": self.bucket.uri(prefix + SUMMARY_FILE),
        }

    def publish(
        self,
        close: BatchClose,
        *,
        outputs: Mapping[str, PartOutput],
        failures: Mapping[str, tuple[RunStatus, str]],
    ) -> dict[str, Any]:
        """Write the close's results (streamed, part after part) and announce them once.

        ``outputs``: completed parts already in memory; ``failures``: failed parts whose run
        record may not say so yet. The others are read from S3 and the ledger.
        """
        batch, generation = close.batch, close.generation
        prefix = results_prefix(batch, generation)
        classes, threshold = self._container_settings(close, prefix, outputs)
        summary = BatchSummary(
            classes, worst_kept=MAX_SOURCE_READS, previewable=is_previewable, findings_kept=MAX_FINDINGS
        )
        with contextlib.ExitStack() as stack:
            predictions = stack.enter_context(
                self.bucket.writer(prefix + PREDICTIONS_FILE, "application/x-ndjson")
            )
            missing: ObjectWriter | None = None
            for part in sorted(close.parts, key=lambda p: p.part):
                lines = self._part_lines(part, prefix, outputs) if part.run_id in close.done_parts else None
                if lines is not None:
                    for raw in lines:
                        summary.add(json.loads(raw))
                        predictions.write(raw + b"\n")
                    continue
                if missing is None:
                    missing = stack.enter_context(
                        self.bucket.writer(prefix + MISSING_FILE, "application/x-ndjson")
                    )
                self._add_missing(part, summary, missing, failures.get(part.run_id))
        document: dict[str, Any] = {"batch": batch, "generation": generation, **summary.to_dict()}
        model = close.model
        document.update(
            {
                "status": batch_status(document),
                "images_in_batch": close.image_count,
                "model": {"uri": model.uri, "source": model.source.value, "lineage": dict(model.lineage)},
                "score_threshold": threshold,
                "runs": list(close.part_runs),
                "images_folder": self.bucket.uri(f"{layout.INFERENCE}{batch}/"),
                "predictions": self.bucket.uri(prefix + PREDICTIONS_FILE),
                "missing_list": self.bucket.uri(prefix + MISSING_FILE) if summary.missing_parts else None,
                "completed_at": iso_utc(self.clock()),
            }
        )
        document["skipped"] = self.batches.skipped_files(batch, limit=MAX_LISTED_SKIPPED).view()
        previews = write_previews(self.bucket, batch, prefix, summary.worst())
        document["previews"] = [self.bucket.uri(k) for k in previews]
        page = write_batch_page(
            self.bucket, self.settings, prefix, document, summary.findings(), now=self.clock()
        )
        document.update(page)
        self.bucket.put_json(prefix + SUMMARY_FILE, document)
        self._announce(document, prefix)
        return document

    def _container_settings(
        self, close: BatchClose, prefix: str, outputs: Mapping[str, PartOutput]
    ) -> tuple[tuple[str, ...], Any]:
        """The classes and score threshold the container reported (the first completed part's)."""
        for part in sorted(close.parts, key=lambda p: p.part):
            if part.run_id not in close.done_parts:
                continue
            if part.run_id in outputs:
                return container_settings(outputs[part.run_id].summary)
            key = part_prefix(prefix, part.part) + SUMMARY_FILE
            with contextlib.suppress(ObjectMissing, ValueError):
                found = json.loads(self.bucket.read(key, cap=MAX_SUMMARY_BYTES))
                if isinstance(found, dict):
                    return container_settings(found)
        return (), None

    def _part_lines(
        self, part: ClosePart, prefix: str, outputs: Mapping[str, PartOutput]
    ) -> Iterator[bytes] | None:
        """A completed part's lines: from memory (the part that ended now) or its file under parts/."""
        if part.run_id in outputs:
            return (raw.rstrip(b"\n") for raw in outputs[part.run_id].raw_lines())
        key = part_prefix(prefix, part.part) + PREDICTIONS_FILE
        try:
            lines = self.bucket.lines(key, cap=MAX_PREDICTIONS_BYTES)
        except ObjectMissing:
            logger.error("completed part %d of %s has no %s: counted as missing", part.part, prefix, key)
            return None
        return (raw for raw in lines if raw.strip())

    def _add_missing(
        self,
        part: ClosePart,
        summary: BatchSummary,
        out: ObjectWriter,
        failure: tuple[RunStatus, str] | None,
    ) -> None:
        """A failed part's images, from its manifest: listed in missing.jsonl, counted in the summary."""
        if failure is None:
            run = self.ledger.get_run(part.run_id)
            failure = (run.status, run.reason) if run else None
        status = failure[0].value if failure else "UNKNOWN"
        reason = (failure[1] if failure else "") or "its results are not available"
        try:
            manifest = json.loads(self.bucket.read(part.manifest_key, cap=MAX_MANIFEST_BYTES))
        except (ObjectMissing, ValueError) as e:
            logger.error("manifest %s of a failed part is unreadable: %s", part.manifest_key, e)
            manifest = []
        images = [str(k) for k in manifest[1:] if isinstance(k, str)] if isinstance(manifest, list) else []
        summary.add_missing_part(
            MissingPart(
                part=part.part,
                run_id=part.run_id,
                status=status,
                reason=reason[:MAX_REASON_CHARS],
                images=part.images,
                manifest=self.bucket.uri(part.manifest_key),
            ),
            images,
        )
        for image in images:
            line = {
                "image": image,
                "part": part.part,
                "run_id": part.run_id,
                "reason": reason[:MAX_REASON_CHARS],
            }
            out.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")

    def _announce(self, summary: Mapping[str, Any], prefix: str) -> None:
        batch, generation = str(summary["batch"]), int(summary["generation"])
        listed = list(summary["defect_images"])[:MAX_LISTED_IN_MESSAGE]
        missing_parts = list(summary["missing_parts"])
        body = {
            **{
                k: v
                for k, v in summary.items()
                if k not in ("defect_images", "unreadable", "missing", "missing_parts", "skipped")
            },
            "skipped_files": summary.get("skipped", {}).get("count", 0),  # listed in summary.json
            "defect_images": listed,
            "defect_images_listed": f"{len(listed)} of {summary['images_with_defects']}",
            "missing_parts": missing_parts[:MAX_PARTS_IN_MESSAGE],
            "missing_parts_not_listed": max(0, len(missing_parts) - MAX_PARTS_IN_MESSAGE),
            "summary": self.bucket.uri(prefix + SUMMARY_FILE),
        }

        def send() -> None:
            # A batch with no result at all has said so already: each of its parts alerted its own
            # failure. The event still goes out, for automation waiting on the batch.
            if summary["status"] != RunStatus.FAILED.value:
                self.notifier.publish(
                    subject_for(summary),
                    body,
                    {
                        "kind": "inference",
                        "status": str(summary["status"]),
                        "batch": batch,
                        "defects": "yes" if summary["images_with_defects"] else "no",
                    },
                )
            self.notifier.emit(DETAIL_TYPE, body)

        if not self.notices.of_batch(batch).send_once(f"results-g{generation}", send, now=self.clock()):
            logger.info("results of %s generation %d were already announced", batch, generation)


@dataclass
class InferenceCompleted:
    """A completed part: its output read before the run settles, then joined to its close."""

    settings: Settings
    _: KW_ONLY
    batches: BatchLedger
    bucket: DropBucket
    batch_results: BatchResults

    def read(self, run: Run, describe: Mapping[str, Any]) -> PartOutput:
        _part_of(run)
        artifact = str((describe.get("ModelArtifacts") or {}).get("S3ModelArtifacts") or "")
        return read_part_output(self.bucket, artifact)

    def __call__(
        self, run: Run, describe: Mapping[str, Any], output: PartOutput, *, now: float
    ) -> dict[str, Any]:
        """Handle one completed part; returns what goes into the run's report under ``results``."""
        part_of = _part_of(run)
        if part_of.parts > 1:
            prefix = part_prefix(results_prefix(part_of.batch, part_of.generation), part_of.part)
            with self.bucket.writer(prefix + PREDICTIONS_FILE, "application/x-ndjson") as out:
                for raw in output.raw_lines():
                    out.write(raw)
            self.bucket.put_json(prefix + SUMMARY_FILE, output.summary)
        close = self.batches.mark_part_done(part_of.batch, part_of.generation, run.run_id)
        return self.batch_results.part_ended(run, close, output=output)


@dataclass
class InferenceFailed:
    """A part that failed for good: its close settles without it once every other part has ended."""

    batches: BatchLedger
    batch_results: BatchResults

    def __call__(self, run: Run, status: RunStatus, reason: str, *, now: float) -> dict[str, Any]:
        part_of = _part_of(run)
        close = self.batches.mark_part_failed(part_of.batch, part_of.generation, run.run_id)
        return self.batch_results.part_ended(run, close, failure=(status, reason))
