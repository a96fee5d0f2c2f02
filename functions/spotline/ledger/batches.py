"""Image batches in the ledger: the batch, its images, its closes, its writers.

Keys (batch, image, close and notice items under ``BATCH#<name>``) in :mod:`spotline.ledger.keys`.

A batch has *generations*: images join the open one (``generation`` on the batch item); closing
a batch is one conditional write that moves ``generation`` on, so exactly one closer wins.
An image item is written once per object (conditional put on its key: S3's redeliveries are
no-ops) and remembers the generation it joined.

An intake invocation *registers as a writer* of the open generation (an attribute
``writer#<id>`` on the batch item, set under the condition that the generation has not moved)
before it writes image items, and removes it after. A sealed generation's images are collected
only when none of its writers is still registered (or their leases expired), so an image whose
write raced the close is never lost; no transaction is needed, each image costs one put.
"""

from __future__ import annotations

import contextlib
from typing import Any

from spotline.domain.timefmt import iso_utc
from spotline.ledger.keys import (
    BATCH_SK,
    IMAGE_PREFIX,
    OPEN_BATCHES,
    SKIPPED_PREFIX,
    SKIPS_SK,
    batch_pk,
    close_sk,
    image_sk,
    skipped_sk,
)
from spotline.ledger.records import WRITER_PREFIX, Batch, BatchClose, ImageRecord, SkippedFile, SkippedFiles
from spotline.ledger.table import GSI1, ConditionFailed, LedgerTable

MAX_REASON_CHARS = 300


class BatchLedger:
    """Batch, image and close items; every state change is a conditional write."""

    def __init__(self, table: LedgerTable) -> None:
        self.table = table

    def _update(self, batch: str, sk: str, expression: str, **kwargs: Any) -> dict[str, Any]:
        return self.table.update_expression(batch_pk(batch), sk, expression, **kwargs)

    # -- batch item --

    def get_batch(self, batch: str) -> Batch | None:
        item = self.table.get(batch_pk(batch), BATCH_SK)
        return Batch.from_item(item) if item else None

    def open_batches(self) -> list[str]:
        """Every batch with images waiting, a close pending or a writer at work (sparse index)."""
        items = self.table.query(OPEN_BATCHES, index=GSI1)
        return [str(i["batch"]) for i in items if i.get("sk") == BATCH_SK]

    def register_writer(
        self, batch: str, writer: str, *, generation: int, expires: float, now: float
    ) -> bool:
        """Join ``generation`` as a writer (creating the batch at generation 1); False if it moved on."""
        try:
            self._update(
                batch,
                BATCH_SK,
                "SET #gen = :gen, #w = :w, #batch = :batch, gsi1pk = :open, gsi1sk = :gsk, "
                "last_seen = :now, first_seen = if_not_exists(first_seen, :now) ADD image_count :zero",
                names={"#gen": "generation", "#w": WRITER_PREFIX + writer, "#batch": "batch"},
                values={
                    ":gen": generation,
                    ":w": {"generation": generation, "expires": expires},
                    ":batch": batch,
                    ":open": OPEN_BATCHES,
                    ":gsk": batch_pk(batch),
                    ":now": now,
                    ":zero": 0,
                },
                condition="attribute_not_exists(#gen) OR #gen = :gen",
                returns="NONE",
            )
        except ConditionFailed:
            return False
        return True

    def finish_writer(self, batch: str, writer: str, *, generation: int, added: int, now: float) -> bool:
        """Leave as a writer and count ``added`` new images; False if the generation was sealed meanwhile.

        The images are in the ledger either way: a sealed generation is collected from its image
        items, the count only drives the "batch is full" trigger of the open generation.
        """
        names = {"#gen": "generation", "#w": WRITER_PREFIX + writer}
        try:
            self._update(
                batch,
                BATCH_SK,
                "REMOVE #w SET last_seen = :now, gsi1pk = :open, gsi1sk = :gsk ADD image_count :n",
                names=names,
                values={
                    ":gen": generation,
                    ":now": now,
                    ":n": added,
                    ":open": OPEN_BATCHES,
                    ":gsk": batch_pk(batch),
                },
                condition="#gen = :gen",
                returns="NONE",
            )
        except ConditionFailed:
            self._update(batch, BATCH_SK, "REMOVE #w", names={"#w": names["#w"]}, returns="NONE")
            return False
        return True

    def mark_ready(self, batch: str, *, now: float) -> Batch | None:
        """The user's ``_READY`` marker: close the open generation without waiting for quiet.

        Only a generation that holds images is marked; None otherwise. A marker processed before
        the images it follows (S3 events come in any order), or delivered again after its
        generation closed, must not leave an empty generation ready: the next upload's first
        images would close it alone and split that upload into an extra job.
        """
        try:
            item = self._update(
                batch,
                BATCH_SK,
                "SET ready = :true, ready_at = :now, gsi1pk = :open, gsi1sk = :gsk",
                values={
                    ":true": True,
                    ":now": now,
                    ":open": OPEN_BATCHES,
                    ":gsk": batch_pk(batch),
                    ":zero": 0,
                },
                condition="image_count > :zero",
            )
        except ConditionFailed:
            return None
        return Batch.from_item(item)

    def seal(self, batch: str, generation: int, *, reason: str, now: float) -> Batch | None:
        """Close ``generation``: exactly one caller gets the batch as it was; the others get None."""
        try:
            item = self._update(
                batch,
                BATCH_SK,
                "SET #gen = :next, image_count = :zero, ready = :false, last_close_reason = :reason, "
                "last_closed_at = :now ADD pending_closes :sealed",
                names={"#gen": "generation"},
                values={
                    ":gen": generation,
                    ":next": generation + 1,
                    ":zero": 0,
                    ":false": False,
                    ":reason": reason,
                    ":now": now,
                    ":sealed": {generation},
                },
                condition="#gen = :gen",
                returns="ALL_OLD",
            )
        except ConditionFailed:
            return None
        return Batch.from_item(item)

    def close_done(self, batch: str, generation: int) -> None:
        """The close of ``generation`` launched everything; take the batch off the index if idle."""
        item = Batch.from_item(
            self._update(batch, BATCH_SK, "DELETE pending_closes :g", values={":g": {generation}})
        )
        if item.pending_closes or item.image_count:
            return
        with contextlib.suppress(ConditionFailed):  # an image arrived meanwhile: the batch stays open
            self._update(
                batch,
                BATCH_SK,
                "REMOVE gsi1pk, gsi1sk",
                names={"#gen": "generation"},
                values={":gen": item.generation, ":zero": 0},
                condition="#gen = :gen AND image_count = :zero AND attribute_not_exists(pending_closes)",
                returns="NONE",
            )

    # -- images --

    def add_image(self, batch: str, image: ImageRecord, *, generation: int, now: float) -> bool:
        """Record the image in ``generation``; False when this object is already recorded.

        The same key with the same ETag is a redelivery. The same key with new content joins the
        open generation only if its earlier content belongs to a generation already closed.
        """
        item = {
            "pk": batch_pk(batch),
            "sk": image_sk(image.relative_key),
            "key": image.key,
            "etag": image.etag,
            "size": image.size,
            "generation": generation,
            "recorded_at": iso_utc(now),
        }
        try:
            self.table.put_if(
                item,
                "attribute_not_exists(pk) OR (etag <> :etag AND #gen < :gen)",
                names={"#gen": "generation"},
                values={":etag": image.etag, ":gen": generation},
            )
        except ConditionFailed:
            return False
        return True

    # -- skipped files --

    def record_skipped(self, batch: str, skipped: SkippedFile, *, now: float) -> bool:
        """Remember a file of the folder that is not one of its images (once per key, then counted)."""
        item = {"pk": batch_pk(batch), "sk": skipped_sk(skipped.relative_key), **skipped.to_item()}
        item["reason"] = skipped.reason[:MAX_REASON_CHARS]
        item["recorded_at"] = iso_utc(now)
        try:
            self.table.put_new(item)
        except ConditionFailed:
            return False  # a redelivery
        self.table.update(batch_pk(batch), SKIPS_SK, {"batch": batch}, add_values={"count": 1})
        return True

    def skipped_files(self, batch: str, *, limit: int) -> SkippedFiles:
        """The folder's skipped files: their count and the first ``limit`` (one get, one bounded query)."""
        counter = self.table.get(batch_pk(batch), SKIPS_SK)
        count = int(counter.get("count", 0)) if counter else 0
        items = self.table.query(batch_pk(batch), SKIPPED_PREFIX, limit=limit) if count else []
        listed = tuple(SkippedFile.from_item(i) for i in items)
        return SkippedFiles(max(count, len(listed)), listed)

    def image_keys(self, batch: str, generation: int) -> list[str]:
        """The relative keys of the images of ``generation``, in key order."""
        items = self.table.query(
            batch_pk(batch),
            IMAGE_PREFIX,
            filter_expression="#gen = :gen",
            filter_values={"#gen": "generation", ":gen": generation},
            projection=("sk",),
        )
        return sorted(str(i["sk"])[len(IMAGE_PREFIX) :] for i in items)

    # -- closes --

    def get_close(self, batch: str, generation: int) -> BatchClose | None:
        item = self.table.get(batch_pk(batch), close_sk(generation))
        return BatchClose.from_item(item) if item else None

    def put_close(self, close: BatchClose) -> BatchClose:
        """Record the close (its parts and model); an existing record wins and is returned."""
        item = {"pk": batch_pk(close.batch), "sk": close_sk(close.generation), **close.to_attrs()}
        try:
            self.table.put_new(item)
        except ConditionFailed:
            existing = self.get_close(close.batch, close.generation)
            if existing is None:  # pragma: no cover - the item cannot vanish
                raise
            return existing
        return close

    def mark_close_launched(self, batch: str, generation: int, *, now: float) -> None:
        self.table.update(
            batch_pk(batch), close_sk(generation), {"status": "LAUNCHED", "launched_at": iso_utc(now)}
        )

    def mark_part_done(self, batch: str, generation: int, run_id: str) -> BatchClose:
        """Add ``run_id`` to the close's completed parts (a set: redeliveries change nothing)."""
        return self._add_part(batch, generation, "done_parts", run_id)

    def mark_part_failed(self, batch: str, generation: int, run_id: str) -> BatchClose:
        """Add ``run_id`` to the close's parts that failed for good (a set, like the completed ones)."""
        return self._add_part(batch, generation, "failed_parts", run_id)

    def _add_part(self, batch: str, generation: int, attribute: str, run_id: str) -> BatchClose:
        # One atomic ADD returning the item as it is after it: of the invocations settling the
        # last parts, at least one sees the close settled, whatever order the parts end in.
        item = self._update(
            batch,
            close_sk(generation),
            f"ADD {attribute} :run",
            values={":run": {run_id}},
            condition="attribute_exists(pk)",
        )
        return BatchClose.from_item(item)
