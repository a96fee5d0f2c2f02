"""From a stream of image uploads to a few well-sized inference jobs: intake and closing.

**Intake** (SQS messages, each an S3 ``Object Created`` event from EventBridge): every object under
``inference/<batch>/`` is classified (image, ``_READY`` marker, control file, or ignored with a
logged reason — see docs/inference.md), images are recorded in the ledger under their batch (the
first folder level), once per object, with one conditional put each.

**Closing** a batch's open generation happens when it has been quiet for the settle window, when
the user drops ``_READY``, or when it holds the per-job maximum of images (then it is split
into ⌈n / max⌉ even parts). The close is one conditional write, so it happens exactly once
however many invocations try; the images of the sealed generation are collected once no intake
invocation is still writing to it, and each part is launched by :mod:`spotline.inference_launch`.
Images arriving after a close start the batch's next generation. No model to run with → the
batch stays open and one alert says so.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spotline import layout
from spotline.events import EventShapeError, ObjectCreated, parse_object_created
from spotline.inference_launch import (
    InferenceLauncher,
    ModelChoice,
    ModelResolver,
    ModelUnavailable,
    PartLaunch,
    inference_run_id,
    split_evenly,
)
from spotline.ledger import LedgerTable, RunLedger
from spotline.ledger.batches import IMAGE_PREFIX, BatchLedger, ImageRecord, pending_closes, writers_of
from spotline.notify import Notifier
from spotline.settings import Settings
from spotline.timefmt import iso_utc
from spotline.training_jobs import TrainingJobs

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
READY_MARKER = "_READY"
REGISTER_TRIES = 5


# ---------------------------------------------------------------------------------------- intake


@dataclass(frozen=True)
class Classified:
    """What an object under ``inference/`` is: ``image``, ``ready``, ``ignored`` or ``skipped``."""

    kind: str
    batch: str = ""
    relative_key: str = ""
    reason: str = ""


def classify(obj: ObjectCreated, settings: Settings) -> Classified:
    """Apply the intake rules (docs/inference.md) to one object."""
    if obj.bucket != settings.bucket:
        return Classified("ignored", reason=f"bucket {obj.bucket} is not the drop bucket")
    try:
        layout.check_user_key(obj.key, layout.INFERENCE)
    except layout.UnsafeKey as e:
        return Classified("ignored", reason=str(e))
    parts = obj.key[len(layout.INFERENCE) :].split("/")
    if len(parts) < 2:
        return Classified("ignored", reason="not in a batch folder: put images under inference/<batch>/")
    batch, relative, name = parts[0], "/".join(parts[1:]), parts[-1]
    if name == READY_MARKER and len(parts) == 2:
        return Classified("ready", batch, relative)
    if name.startswith("_"):
        return Classified("ignored", batch, relative, "control file (names starting with '_' are not images)")
    if any(p.startswith(".") for p in parts[1:]):
        return Classified("ignored", batch, relative, "hidden file or folder (name starts with '.')")
    if not name.lower().endswith(IMAGE_SUFFIXES):
        return Classified("ignored", batch, relative, f"not an image (expected {' '.join(IMAGE_SUFFIXES)})")
    if obj.size <= 0:
        return Classified("skipped", batch, relative, "empty object")
    if obj.size > settings.max_image_bytes:
        return Classified(
            "skipped",
            batch,
            relative,
            f"{obj.size} bytes is over the {settings.max_image_bytes}-byte image cap",
        )
    return Classified("image", batch, relative)


@dataclass(frozen=True)
class IntakeOutcome:
    """What happened to one message: recorded, duplicate, ready, ignored, skipped or failed."""

    action: str
    batch: str = ""
    key: str = ""
    reason: str = ""


class ImageIntake:
    """Records the images of one SQS batch, grouped per batch folder (one registration per folder)."""

    def __init__(
        self,
        settings: Settings,
        *,
        batches: BatchLedger,
        closer: BatchCloser,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.batches = batches
        self.closer = closer
        self.clock = clock

    def record_messages(
        self, messages: Sequence[tuple[str, str]], *, writer: str, deadline: float
    ) -> dict[str, IntakeOutcome]:
        """``{message id: outcome}`` for ``(message id, body)`` pairs; only ``failed`` ones are retried.

        ``writer`` names this invocation and ``deadline`` is when it can no longer be writing
        (its timeout): a close waits for registered writers until then, never longer.
        """
        outcomes: dict[str, IntakeOutcome] = {}
        images: dict[str, list[tuple[str, ObjectCreated, Classified]]] = defaultdict(list)
        ready: dict[str, list[str]] = defaultdict(list)
        for message_id, body in messages:
            try:
                obj = parse_object_created(json.loads(body))
            except (ValueError, EventShapeError) as e:
                logger.warning("unusable message %s, not retried: %s", message_id, e)
                outcomes[message_id] = IntakeOutcome("ignored", reason=f"not an S3 Object Created event: {e}")
                continue
            what = classify(obj, self.settings)
            if what.kind == "image":
                images[what.batch].append((message_id, obj, what))
            elif what.kind == "ready":
                ready[what.batch].append(message_id)
            else:
                logger.info("%s %s: %s", what.kind, obj.key, what.reason, extra={"key": obj.key})
                outcomes[message_id] = IntakeOutcome(what.kind, what.batch, obj.key, what.reason)
        for batch, group in images.items():
            outcomes.update(self._record_batch_images(batch, group, writer=writer, deadline=deadline))
        for batch, message_ids in ready.items():  # after the images: a marker closes what came before it
            outcome = self._ready(batch)
            outcomes.update({m: outcome for m in message_ids})
        return outcomes

    def _record_batch_images(
        self,
        batch: str,
        group: Sequence[tuple[str, ObjectCreated, Classified]],
        *,
        writer: str,
        deadline: float,
    ) -> dict[str, IntakeOutcome]:
        outcomes: dict[str, IntakeOutcome] = {}
        try:
            generation = self._register(batch, writer, deadline)
        except Exception as e:
            logger.exception("could not join batch %s", batch)
            return {m: IntakeOutcome("failed", batch, obj.key, str(e)) for m, obj, _ in group}
        added = 0
        for message_id, obj, what in group:
            image = ImageRecord(obj.key, what.relative_key, obj.etag or obj.version_or_etag, obj.size)
            try:
                new = self.batches.add_image(batch, image, generation=generation, now=self.clock())
            except Exception as e:
                logger.exception("could not record %s", obj.key)
                outcomes[message_id] = IntakeOutcome("failed", batch, obj.key, str(e))
                continue
            added += new
            outcomes[message_id] = IntakeOutcome("recorded" if new else "duplicate", batch, obj.key)
        try:
            self.batches.finish_writer(batch, writer, generation=generation, added=added, now=self.clock())
        except Exception as e:
            # The images are recorded; only the count lags. Retrying the messages finds duplicates.
            logger.exception("could not count %d new images of batch %s", added, batch)
            return {m: IntakeOutcome("failed", batch, o.key, str(e)) for m, o in outcomes.items()}
        logger.info("batch %s: %d new image(s), %d duplicate(s)", batch, added, len(group) - added)
        return outcomes

    def _register(self, batch: str, writer: str, deadline: float) -> int:
        """Join the batch's open generation as a writer; returns that generation."""
        for _ in range(REGISTER_TRIES):
            item = self.batches.get_batch(batch)
            generation = int(item["generation"]) if item and "generation" in item else 1
            if self.batches.register_writer(
                batch, writer, generation=generation, expires=deadline, now=self.clock()
            ):
                return generation
        raise RuntimeError(f"batch {batch} kept closing while this invocation tried to join it")

    def _ready(self, batch: str) -> IntakeOutcome:
        try:
            item = self.batches.mark_ready(batch, now=self.clock())
            closes = self.closer.consider(item)
        except Exception as e:
            logger.exception("could not close batch %s on its _READY marker", batch)
            return IntakeOutcome("failed", batch, f"{layout.INFERENCE}{batch}/{READY_MARKER}", str(e))
        done = "; ".join(c.describe() for c in closes) or "nothing to close yet"
        return IntakeOutcome("ready", batch, f"{layout.INFERENCE}{batch}/{READY_MARKER}", done)


# --------------------------------------------------------------------------------------- closing


@dataclass(frozen=True)
class CloseOutcome:
    """What considering a batch did: launched, waiting (for writers or a model), empty, or open."""

    action: str
    batch: str
    generation: int
    reason: str = ""
    runs: tuple[PartLaunch, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        runs = ", ".join(f"{r.job_name} {r.action}" for r in self.runs)
        return (
            f"{self.batch} g{self.generation} {self.action}"
            + (f" ({self.reason})" if self.reason else "")
            + (f": {runs}" if runs else "")
        )


class BatchCloser:
    """Closes due batches and launches their parts; safe to run from many invocations at once."""

    def __init__(
        self,
        settings: Settings,
        *,
        batches: BatchLedger,
        launcher: InferenceLauncher,
        models: ModelResolver,
        notifier: Notifier,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.batches = batches
        self.launcher = launcher
        self.models = models
        self.notifier = notifier
        self.clock = clock

    def close_due_batches(self) -> list[CloseOutcome]:
        """The scheduled sweep: every open batch is considered; one batch's failure spares the others."""
        outcomes: list[CloseOutcome] = []
        failures: list[str] = []
        for listed in self.batches.open_batches():
            batch = str(listed["batch"])
            try:
                item = self.batches.get_batch(batch)
                if item is not None:
                    outcomes.extend(self.consider(item))
            except Exception as e:
                logger.exception("closing batch %s failed", batch)
                failures.append(f"{batch}: {e}")
        if failures:
            raise BatchCloseError(failures, outcomes)
        return outcomes

    def due(self, item: Mapping[str, Any], now: float) -> str | None:
        """Why the open generation should close now (``ready``, ``full``, ``quiet``), or None."""
        count = int(item.get("image_count", 0))
        if count <= 0:
            return None
        if item.get("ready"):
            return "ready"
        if count >= self.settings.batch_max_images:
            return "full"
        if now - float(item.get("last_seen", now)) >= self.settings.batch_settle_seconds:
            return "quiet"
        return None

    def consider(self, item: Mapping[str, Any]) -> list[CloseOutcome]:
        """Finish pending closes of the batch, then close its open generation if it is due."""
        batch = str(item["batch"])
        outcomes = [self._finish_close(batch, g, item) for g in pending_closes(item)]
        now = self.clock()
        generation = int(item.get("generation", 1))
        reason = self.due(item, now)
        if reason is None:
            return outcomes
        model = self._model(batch, generation)
        if model is None:
            return [*outcomes, CloseOutcome("waiting", batch, generation, "no model to run with")]
        if self.batches.seal(batch, generation, reason=reason, now=now) is None:
            return [*outcomes, CloseOutcome("open", batch, generation, "closed by another invocation")]
        logger.info("batch %s generation %d closed (%s)", batch, generation, reason)
        fresh = self.batches.get_batch(batch) or item
        return [*outcomes, self._finish_close(batch, generation, fresh, model=model, reason=reason)]

    def _model(self, batch: str, generation: int) -> ModelChoice | None:
        """The model to run with, or None after alerting (once) why the batch waits."""
        try:
            model = self.models.resolve(batch)
        except ModelUnavailable as e:
            self._alert_once(
                batch, f"job-file-{e.version}", f"spotline: batch {batch} waits: bad _job.yaml", str(e)
            )
            return None
        if model is None:
            self._alert_once(
                batch,
                f"no-model-g{generation}",
                f"spotline: batch {batch} waits for a promoted model",
                "No model is promoted yet and the folder has no _job.yaml naming one. The batch stays open "
                "and closes as soon as a model is promoted (or a _job.yaml names one).",
            )
        return model

    def _alert_once(self, batch: str, what: str, subject: str, reason: str) -> None:
        now = self.clock()
        if not self.batches.claim_notice(batch, what, now):
            return
        try:
            self.notifier.publish(
                subject,
                {"batch": batch, "status": "WAITING", "reason": reason, "at": iso_utc(now)},
                {"kind": "batch", "status": "WAITING", "batch": batch},
            )
        except Exception:
            self.batches.release_notice(batch, what)
            raise
        logger.warning("batch %s waits: %s", batch, reason)

    def _finish_close(
        self,
        batch: str,
        generation: int,
        batch_item: Mapping[str, Any],
        *,
        model: ModelChoice | None = None,
        reason: str = "",
    ) -> CloseOutcome:
        now = self.clock()
        close = self.batches.get_close(batch, generation)
        if close is None:
            writers = writers_of(batch_item, generation, now)
            if writers:
                return CloseOutcome(
                    "waiting", batch, generation, f"{len(writers)} intake writer(s) still at work"
                )
            if model is None:
                model = self._model(batch, generation)
                if model is None:
                    return CloseOutcome("waiting", batch, generation, "no model to run with")
            close = self._collect(
                batch, generation, model, reason or str(batch_item.get("last_close_reason", ""))
            )
            if close is None:
                self.batches.close_done(batch, generation)
                return CloseOutcome("empty", batch, generation, "no new images in the closed generation")
        chosen = ModelChoice.from_item(close["model"])
        runs = tuple(
            self.launcher.launch_part(part, batch=batch, generation=generation, model=chosen)
            for part in close["parts"]
        )
        if all(r.action != "busy" for r in runs):
            if close.get("status") != "LAUNCHED":
                self.batches.update_close(
                    batch, generation, {"status": "LAUNCHED", "launched_at": iso_utc(now)}
                )
            self.batches.close_done(batch, generation)
            return CloseOutcome("launched", batch, generation, str(close.get("reason", "")), runs)
        return CloseOutcome("waiting", batch, generation, "a part is being launched elsewhere", runs)

    def _collect(self, batch: str, generation: int, model: ModelChoice, reason: str) -> dict[str, Any] | None:
        """Split the sealed generation into parts, write their manifests, record the close."""
        keys = sorted(str(i["sk"])[len(IMAGE_PREFIX) :] for i in self.batches.images_of(batch, generation))
        if not keys:
            return None
        chunks = split_evenly(keys, self.settings.batch_max_images)
        parts = []
        for number, chunk in enumerate(chunks, start=1):
            run_id = inference_run_id(self.settings.bucket, batch, generation, number)
            manifest = self.launcher.write_manifest(run_id, batch, chunk)
            parts.append(
                {
                    "run_id": run_id,
                    "part": number,
                    "parts": len(chunks),
                    "images": len(chunk),
                    "manifest_key": manifest,
                }
            )
        return self.batches.put_close(
            batch,
            generation,
            {
                "parts": parts,
                "image_count": len(keys),
                "model": model.to_item(),
                "reason": reason,
                "status": "LAUNCHING",
                "closed_at": iso_utc(self.clock()),
            },
        )


class BatchCloseError(RuntimeError):
    """Some batches could not be closed or launched this time (they are retried on the next sweep)."""

    def __init__(self, failures: Iterable[str], outcomes: Sequence[CloseOutcome]) -> None:
        self.failures = list(failures)
        self.outcomes = list(outcomes)
        super().__init__("; ".join(self.failures))


# ---------------------------------------------------------------------------------------- wiring


def build_closer(settings: Settings, *, clock: Callable[[], float] = time.time) -> BatchCloser:
    """The deployed wiring of the closer (clients built on first use)."""
    table = LedgerTable(settings.table)
    ledger = RunLedger(table)
    notifier = Notifier(settings.topic_arn, settings.event_bus)
    return BatchCloser(
        settings,
        batches=BatchLedger(table),
        launcher=InferenceLauncher(
            settings, ledger=ledger, jobs=TrainingJobs(), notifier=notifier, clock=clock
        ),
        models=ModelResolver(settings, ledger=ledger),
        notifier=notifier,
        clock=clock,
    )


def build_intake(settings: Settings, *, clock: Callable[[], float] = time.time) -> ImageIntake:
    closer = build_closer(settings, clock=clock)
    return ImageIntake(settings, batches=closer.batches, closer=closer, clock=clock)


def count_actions(outcomes: Iterable[IntakeOutcome]) -> Mapping[str, int]:
    """``{action: count}`` of a batch of intake outcomes (for metrics and the handler's return)."""
    counts: dict[str, int] = defaultdict(int)
    for outcome in outcomes:
        counts[outcome.action] += 1
    return dict(counts)
