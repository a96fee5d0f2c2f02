"""Image batches in the ledger: the batch, its images, its closes, its writers.

| item                 | pk               | sk                    | gsi1pk          | gsi1sk           |
|----------------------|------------------|-----------------------|-----------------|------------------|
| batch                | ``BATCH#<name>`` | ``BATCH``             | ``OPEN_BATCHES`` | ``BATCH#<name>`` |
| image                | ``BATCH#<name>`` | ``IMG#<rel key>``     |                 |                  |
| close of generation  | ``BATCH#<name>`` | ``CLOSE#<gen:06d>``   |                 |                  |
| notice sent (dedup)  | ``BATCH#<name>`` | ``NOTICE#<what>``     |                 |                  |

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
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from spotline.ledger.table import GSI1, ConditionFailed, LedgerTable
from spotline.timefmt import iso_utc

OPEN_BATCHES = "OPEN_BATCHES"
BATCH_SK = "BATCH"
IMAGE_PREFIX = "IMG#"
CLOSE_PREFIX = "CLOSE#"
WRITER_PREFIX = "writer#"


def batch_pk(batch: str) -> str:
    return f"BATCH#{batch}"


def close_sk(generation: int) -> str:
    return f"{CLOSE_PREFIX}{generation:06d}"


@dataclass(frozen=True)
class ImageRecord:
    """One image object of a batch, as the intake records it."""

    key: str
    relative_key: str
    etag: str
    size: int


def writers_of(batch_item: Mapping[str, Any], generation: int, now: float) -> list[str]:
    """Writer ids still registered (lease not expired) for ``generation`` of the batch."""
    live = []
    for name, value in batch_item.items():
        if (
            name.startswith(WRITER_PREFIX)
            and isinstance(value, Mapping)
            and int(value.get("generation", 0)) == generation
            and float(value.get("expires", 0)) > now
        ):
            live.append(name[len(WRITER_PREFIX) :])
    return live


def pending_closes(batch_item: Mapping[str, Any]) -> list[int]:
    """Generations sealed but not yet fully launched, oldest first."""
    return sorted(int(g) for g in batch_item.get("pending_closes") or ())


class BatchLedger:
    """Batch, image and close items; every state change is a conditional write."""

    def __init__(self, table: LedgerTable) -> None:
        from boto3.dynamodb.types import TypeSerializer

        self.table = table
        self._ser = TypeSerializer()

    # -- low level: expressions LedgerTable.update does not cover (nested names, sets, DELETE) --

    def _values(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self._ser.serialize(_dynamo(v)) for k, v in values.items()}

    def _update(
        self,
        batch: str,
        sk: str,
        expression: str,
        *,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        condition: str | None = None,
        returns: str = "ALL_NEW",
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "TableName": self.table.name,
            "Key": self._values({"pk": batch_pk(batch), "sk": sk}),
            "UpdateExpression": expression,
            "ReturnValues": returns,
        }
        if names:
            request["ExpressionAttributeNames"] = dict(names)
        if values:
            request["ExpressionAttributeValues"] = self._values(values)
        if condition:
            request["ConditionExpression"] = condition
        client = self.table.client
        try:
            response = client.update_item(**request)
        except client.exceptions.ConditionalCheckFailedException as e:
            raise ConditionFailed(f"{batch_pk(batch)}/{sk}: {condition}") from e
        return _plain(response.get("Attributes") or {})

    # -- batch item --

    def get_batch(self, batch: str) -> dict[str, Any] | None:
        return self.table.get(batch_pk(batch), BATCH_SK)

    def open_batches(self) -> list[dict[str, Any]]:
        """Every batch with images waiting, a close pending or a writer at work (sparse index)."""
        return [i for i in self.table.query(OPEN_BATCHES, index=GSI1) if i.get("sk") == BATCH_SK]

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

    def mark_ready(self, batch: str, *, now: float) -> dict[str, Any]:
        """The user's ``_READY`` marker: close the open generation without waiting for quiet."""
        return self._update(
            batch,
            BATCH_SK,
            "SET ready = :true, ready_at = :now, #batch = :batch, gsi1pk = :open, gsi1sk = :gsk, "
            "#gen = if_not_exists(#gen, :one), first_seen = if_not_exists(first_seen, :now), "
            "last_seen = if_not_exists(last_seen, :now) ADD image_count :zero",
            names={"#gen": "generation", "#batch": "batch"},
            values={
                ":true": True,
                ":now": now,
                ":batch": batch,
                ":open": OPEN_BATCHES,
                ":gsk": batch_pk(batch),
                ":one": 1,
                ":zero": 0,
            },
        )

    def seal(self, batch: str, generation: int, *, reason: str, now: float) -> dict[str, Any] | None:
        """Close ``generation``: exactly one caller gets the batch as it was; the others get None."""
        try:
            return self._update(
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

    def close_done(self, batch: str, generation: int) -> None:
        """The close of ``generation`` launched everything; take the batch off the index if idle."""
        item = self._update(
            batch, BATCH_SK, "DELETE pending_closes :g", values={":g": {generation}}, returns="ALL_NEW"
        )
        if item.get("pending_closes") or int(item.get("image_count", 0)):
            return
        with contextlib.suppress(ConditionFailed):  # an image arrived meanwhile: the batch stays open
            self._update(
                batch,
                BATCH_SK,
                "REMOVE gsi1pk, gsi1sk",
                names={"#gen": "generation"},
                values={":gen": int(item["generation"]), ":zero": 0},
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
            "sk": IMAGE_PREFIX + image.relative_key,
            "key": image.key,
            "etag": image.etag,
            "size": image.size,
            "generation": generation,
            "recorded_at": iso_utc(now),
        }
        client = self.table.client
        try:
            client.put_item(
                TableName=self.table.name,
                Item=self._values(item),
                ConditionExpression="attribute_not_exists(pk) OR (etag <> :etag AND #gen < :gen)",
                ExpressionAttributeNames={"#gen": "generation"},
                ExpressionAttributeValues=self._values({":etag": image.etag, ":gen": generation}),
            )
        except client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def images_of(self, batch: str, generation: int) -> list[dict[str, Any]]:
        """The image items of ``generation``, in key order."""
        request: dict[str, Any] = {
            "TableName": self.table.name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :img)",
            "FilterExpression": "#gen = :gen",
            "ExpressionAttributeNames": {"#gen": "generation"},
            "ExpressionAttributeValues": self._values(
                {":pk": batch_pk(batch), ":img": IMAGE_PREFIX, ":gen": generation}
            ),
            "ProjectionExpression": "sk, #key",
            "ConsistentRead": True,
        }
        request["ExpressionAttributeNames"]["#key"] = "key"
        items: list[dict[str, Any]] = []
        while True:
            response = self.table.client.query(**request)
            items.extend(_plain(i) for i in response.get("Items", []))
            if not response.get("LastEvaluatedKey"):
                return items
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # -- closes --

    def get_close(self, batch: str, generation: int) -> dict[str, Any] | None:
        return self.table.get(batch_pk(batch), close_sk(generation))

    def put_close(self, batch: str, generation: int, attrs: Mapping[str, Any]) -> dict[str, Any]:
        """Record the close (its parts and model); an existing record wins and is returned."""
        item = {
            "pk": batch_pk(batch),
            "sk": close_sk(generation),
            "batch": batch,
            "generation": generation,
            **attrs,
        }
        try:
            self.table.put_new(item)
        except ConditionFailed:
            existing = self.get_close(batch, generation)
            if existing is None:  # pragma: no cover - the item cannot vanish
                raise
            return existing
        return item

    def update_close(self, batch: str, generation: int, attrs: Mapping[str, Any]) -> dict[str, Any]:
        return self.table.update(batch_pk(batch), close_sk(generation), attrs)

    def mark_part_done(self, batch: str, generation: int, run_id: str) -> dict[str, Any]:
        """Add ``run_id`` to the close's finished parts (a set: redeliveries change nothing)."""
        return self._update(
            batch,
            close_sk(generation),
            "ADD done_parts :run",
            values={":run": {run_id}},
            condition="attribute_exists(pk)",
        )

    # -- notices --

    def claim_notice(self, batch: str, what: str, now: float) -> bool:
        """True exactly once per (batch, what): the caller that gets True sends the notice."""
        try:
            self.table.put_new({"pk": batch_pk(batch), "sk": f"NOTICE#{what}", "sent_at": iso_utc(now)})
        except ConditionFailed:
            return False
        return True

    def release_notice(self, batch: str, what: str) -> None:
        """Undo a claim whose message could not be sent, so that a retry sends it."""
        self.table.delete(batch_pk(batch), f"NOTICE#{what}")


def _dynamo(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {k: _dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_dynamo(v) for v in value]
    if isinstance(value, set | frozenset):
        return {_dynamo(v) for v in value}
    return value


def _plain(item: Mapping[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    de = TypeDeserializer()
    return {k: _native(de.deserialize(v)) for k, v in item.items()}


def _native(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _native(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_native(v) for v in value]
    if isinstance(value, set | frozenset):
        return {_native(v) for v in value}
    return value
