"""From a stream of image uploads to batches in the ledger: the intake.

Every SQS message is an S3 ``Object Created`` event from EventBridge. Every object under
``inference/<batch>/`` is classified (image, ``_READY`` marker, control file, or ignored with a
logged reason — see docs/inference.md); images are recorded in the ledger under their batch
(the first folder level), once per object, with one conditional put each. A ``_READY`` marker
asks the closer (:mod:`spotline.inference.closer`) to close the batch at once — once per upload
of the marker, and only a generation that holds images (events come in any order and more than
once: a stray marker must not make the next upload's first images a job of their own).
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass

from spotline.domain import layout
from spotline.domain.events import EventShapeError, ObjectCreated, parse_object_created
from spotline.domain.settings import Settings
from spotline.inference.closer import BatchCloser, CloseOutcome
from spotline.ledger.batches import BatchLedger
from spotline.ledger.notices import Notices
from spotline.ledger.records import ImageRecord, SkippedFile

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
READY_MARKER = "_READY"
REGISTER_TRIES = 5


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


@dataclass
class ImageIntake:
    """Records the images of one SQS batch, grouped per batch folder (one registration per folder)."""

    settings: Settings
    _: KW_ONLY
    batches: BatchLedger
    batch_closer: BatchCloser
    notices: Notices
    clock: Callable[[], float] = time.time

    def record_messages(
        self, messages: Sequence[tuple[str, str]], *, writer: str, deadline: float
    ) -> dict[str, IntakeOutcome]:
        """``{message id: outcome}`` for ``(message id, body)`` pairs; only ``failed`` ones are retried.

        ``writer`` names this invocation and ``deadline`` is when it can no longer be writing
        (its timeout): a close waits for registered writers until then, never longer.
        """
        outcomes: dict[str, IntakeOutcome] = {}
        images: dict[str, list[tuple[str, ObjectCreated, Classified]]] = defaultdict(list)
        ready: dict[str, list[tuple[str, ObjectCreated]]] = defaultdict(list)
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
                ready[what.batch].append((message_id, obj))
            else:
                logger.info("%s %s: %s", what.kind, obj.key, what.reason, extra={"key": obj.key})
                outcomes[message_id] = self._skipped(obj, what)
        for batch, group in images.items():
            outcomes.update(self._record_batch_images(batch, group, writer=writer, deadline=deadline))
        for batch, markers in ready.items():  # after the images: a marker closes what came before it
            for upload in dict.fromkeys(obj.upload_id for _, obj in markers):
                outcome = self._ready(batch, upload)
                outcomes.update({m: outcome for m, obj in markers if obj.upload_id == upload})
        return outcomes

    def _skipped(self, obj: ObjectCreated, what: Classified) -> IntakeOutcome:
        """A file of a batch folder that is not an image: listed in the batch's summary.json, with
        why (control files such as ``_job.yaml`` are the batch's own, not skipped)."""
        outcome = IntakeOutcome(what.kind, what.batch, obj.key, what.reason)
        if not what.batch or what.relative_key.rsplit("/", 1)[-1].startswith("_"):
            return outcome
        try:
            self.batches.record_skipped(
                what.batch, SkippedFile(what.relative_key, what.reason), now=self.clock()
            )
        except Exception as e:
            logger.exception("could not record the skipped file %s", obj.key)
            return IntakeOutcome("failed", what.batch, obj.key, str(e))
        return outcome

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
            generation = item.generation if item else 1
            if self.batches.register_writer(
                batch, writer, generation=generation, expires=deadline, now=self.clock()
            ):
                return generation
        raise RuntimeError(f"batch {batch} kept closing while this invocation tried to join it")

    def _ready(self, batch: str, upload: str) -> IntakeOutcome:
        """One ``_READY`` upload closes the batch's open generation, once (a redelivery does nothing)."""
        key = f"{layout.INFERENCE}{batch}/{READY_MARKER}"
        closes: list[CloseOutcome] = []
        marked: list[bool] = []

        def close_now() -> None:
            item = self.batches.mark_ready(batch, now=self.clock())
            marked.append(item is not None)
            if item is not None:
                closes.extend(self.batch_closer.consider(item))

        try:
            if not self.notices.of_batch(batch).send_once(f"ready-{upload}", close_now, now=self.clock()):
                return IntakeOutcome("duplicate", batch, key, "this _READY marker was already applied")
        except Exception as e:
            logger.exception("could not close batch %s on its _READY marker", batch)
            return IntakeOutcome("failed", batch, key, str(e))
        if not any(marked):
            reason = "no image recorded yet: the batch closes when it has been quiet"
            logger.info("%s: %s", key, reason)
            return IntakeOutcome("ready", batch, key, reason)
        done = "; ".join(c.describe() for c in closes) or "nothing to close yet"
        return IntakeOutcome("ready", batch, key, done)


def count_actions(outcomes: Iterable[IntakeOutcome]) -> Mapping[str, int]:
    """``{action: count}`` of a batch of intake outcomes (for metrics and the handler's return)."""
    counts: dict[str, int] = defaultdict(int)
    for outcome in outcomes:
        counts[outcome.action] += 1
    return dict(counts)
