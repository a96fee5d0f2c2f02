"""The ledger's one DynamoDB table, seen through a small adapter.

Single-table layout (``pk``/``sk`` strings, sparse index ``gsi1`` on ``gsi1pk``/``gsi1sk``); each
record module owns its item kinds (:mod:`spotline.ledger.runs`, :mod:`spotline.ledger.batches`,
:mod:`spotline.ledger.models`, :mod:`spotline.ledger.notices`). Every write that moves state is
conditional; a lost condition becomes :class:`ConditionFailed`, never an error string.

Every value is checked before it is sent (:func:`check_storable`): DynamoDB numbers are decimals
of at most 38 digits between 1e-130 and 1e126, and NaN or infinity cannot be stored at all
(:mod:`spotline.config.numbers`, the rule the config schema applies too), so a value that could
not be written is refused here, by name, and never discovered by a write that comes after a paid
``CreateTrainingJob``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from spotline.adapters import aws
from spotline.config.numbers import number_problem

GSI1 = "gsi1"
MAX_TEXT_BYTES = 64 * 1024
MAX_ITEM_BYTES = 350 * 1024  # DynamoDB's item limit is 400 KB, names and overhead included


class ConditionFailed(Exception):
    """A conditional write found the item in another state than required."""


class UnstorableValue(ValueError):
    """A value the table cannot hold (NaN, infinity, out of DynamoDB's range, text too long)."""


def check_storable(value: Any, path: str = "item") -> None:
    """Raise :class:`UnstorableValue` naming ``path`` if ``value`` cannot be written as it is."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float | Decimal):
        problem = number_problem(value)
        if problem is not None:
            raise UnstorableValue(f"{path}: {value!r} {problem}")
        return
    if isinstance(value, str):
        if len(value.encode()) > MAX_TEXT_BYTES:
            raise UnstorableValue(f"{path}: text of {len(value.encode())} bytes (at most {MAX_TEXT_BYTES})")
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            check_storable(v, f"{path}.{k}")
        return
    if isinstance(value, list | tuple | set | frozenset):
        for i, v in enumerate(value):
            check_storable(v, f"{path}[{i}]")
        return
    raise UnstorableValue(f"{path}: {type(value).__name__} values are not stored")


def to_dynamo(value: Any) -> Any:
    """A plain value as boto3's serializer takes it (floats as Decimal; None members dropped)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {k: to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [to_dynamo(v) for v in value]
    if isinstance(value, set | frozenset):
        return {to_dynamo(v) for v in value}
    return value


def from_dynamo(value: Any) -> Any:
    """A deserialized value as plain Python (Decimal as int or float)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    if isinstance(value, set | frozenset):
        return {from_dynamo(v) for v in value}
    return value


class LedgerTable:
    """Typed access to the table: put-if-absent, conditional update, get, query, delete."""

    client = aws.ServiceClient("dynamodb")

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self.name = table_name
        self.client = client
        self._ser = TypeSerializer()
        self._de = TypeDeserializer()

    def serialize(self, attrs: Mapping[str, Any]) -> dict[str, Any]:
        """Attributes in DynamoDB's wire format, after :func:`check_storable` (None values dropped)."""
        out = {}
        for k, v in attrs.items():
            if v is None:
                continue
            check_storable(v, k)
            out[k] = self._ser.serialize(to_dynamo(v))
        return out

    def plain(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {k: from_dynamo(self._de.deserialize(v)) for k, v in item.items()}

    def put_new(self, item: Mapping[str, Any]) -> None:
        """Write ``item`` only if no item has its key; otherwise :class:`ConditionFailed`."""
        self.put_if(item, "attribute_not_exists(pk)")

    def put_if(
        self,
        item: Mapping[str, Any],
        condition: str,
        *,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        """Write ``item`` if ``condition`` holds for the item it replaces; else :class:`ConditionFailed`."""
        wire = self.serialize(item)
        size = sum(len(k) + len(str(v)) for k, v in wire.items())
        if size > MAX_ITEM_BYTES:
            raise UnstorableValue(f"{item['pk']}/{item['sk']}: item of about {size} bytes is too large")
        request: dict[str, Any] = {"TableName": self.name, "Item": wire, "ConditionExpression": condition}
        if names:
            request["ExpressionAttributeNames"] = dict(names)
        if values:
            request["ExpressionAttributeValues"] = self.serialize(values)
        try:
            self.client.put_item(**request)
        except self.client.exceptions.ConditionalCheckFailedException as e:
            raise ConditionFailed(f"{item['pk']}/{item['sk']}: {condition}") from e

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.name, Key=self.serialize({"pk": pk, "sk": sk}), ConsistentRead=True
        )
        item = response.get("Item")
        return self.plain(item) if item else None

    def delete(self, pk: str, sk: str) -> None:
        """Remove one item (absent is fine)."""
        self.client.delete_item(TableName=self.name, Key=self.serialize({"pk": pk, "sk": sk}))

    def update_expression(
        self,
        pk: str,
        sk: str,
        expression: str,
        *,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        condition: str | None = None,
        returns: str = "ALL_NEW",
    ) -> dict[str, Any]:
        """One UpdateItem with a hand-written expression (sets, nested names, DELETE)."""
        request: dict[str, Any] = {
            "TableName": self.name,
            "Key": self.serialize({"pk": pk, "sk": sk}),
            "UpdateExpression": expression,
            "ReturnValues": returns,
        }
        if names:
            request["ExpressionAttributeNames"] = dict(names)
        if values:
            request["ExpressionAttributeValues"] = self.serialize(values)
        if condition:
            request["ConditionExpression"] = condition
        try:
            response = self.client.update_item(**request)
        except self.client.exceptions.ConditionalCheckFailedException as e:
            raise ConditionFailed(f"{pk}/{sk}: {condition}") from e
        return self.plain(response.get("Attributes") or {})

    def update(
        self,
        pk: str,
        sk: str,
        set_values: Mapping[str, Any],
        *,
        condition: str | None = None,
        condition_values: Mapping[str, Any] | None = None,
        add_values: Mapping[str, int | float] | None = None,
        remove: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """SET/ADD/REMOVE attributes under an optional condition; returns the new item.

        ``condition_values`` holds the condition's ``#name`` and ``:value`` placeholders.
        """
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        clauses = []
        # DynamoDB has no null here: setting None means removing the attribute.
        remove = (*remove, *(k for k, v in set_values.items() if v is None))
        sets = []
        for i, (k, v) in enumerate((k, v) for k, v in set_values.items() if v is not None):
            names[f"#s{i}"] = k
            values[f":s{i}"] = v
            sets.append(f"#s{i} = :s{i}")
        if sets:
            clauses.append("SET " + ", ".join(sets))
        adds = []
        for i, (k, v) in enumerate((add_values or {}).items()):
            names[f"#a{i}"] = k
            values[f":a{i}"] = v
            adds.append(f"#a{i} :a{i}")
        if adds:
            clauses.append("ADD " + ", ".join(adds))
        if remove:
            for i, k in enumerate(remove):
                names[f"#r{i}"] = k
            clauses.append("REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove))))
        for k, v in (condition_values or {}).items():
            (names if k.startswith("#") else values)[k] = v
        return self.update_expression(
            pk, sk, " ".join(clauses), names=names, values=values, condition=condition
        )

    def query(
        self,
        pk: str,
        sk_prefix: str = "",
        *,
        sk_between: tuple[str, str] | None = None,
        index: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        filter_expression: str | None = None,
        filter_values: Mapping[str, Any] | None = None,
        projection: tuple[str, ...] = (),
    ) -> list[dict[str, Any]]:
        """Items under ``pk`` whose sort key starts with ``sk_prefix`` or lies within ``sk_between``
        (every page, or ``limit`` items)."""
        pk_name, sk_name = ("gsi1pk", "gsi1sk") if index else ("pk", "sk")
        names = {"#pk": pk_name, **({"#sk": sk_name} if sk_prefix or sk_between else {})}
        values: dict[str, Any] = {":pk": pk, **({":sk": sk_prefix} if sk_prefix else {})}
        key_condition = "#pk = :pk" + (" AND begins_with(#sk, :sk)" if sk_prefix else "")
        if sk_between:
            values.update({":lo": sk_between[0], ":hi": sk_between[1]})
            key_condition += " AND #sk BETWEEN :lo AND :hi"
        for k, v in (filter_values or {}).items():
            (names if k.startswith("#") else values)[k] = v
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": key_condition,
            "ScanIndexForward": not newest_first,
        }
        if filter_expression:
            request["FilterExpression"] = filter_expression
        if projection:
            for i, attr in enumerate(projection):
                names[f"#p{i}"] = attr
            request["ProjectionExpression"] = ", ".join(f"#p{i}" for i in range(len(projection)))
        request["ExpressionAttributeNames"] = names
        request["ExpressionAttributeValues"] = self.serialize(values)
        if index:
            request["IndexName"] = index
        else:
            request["ConsistentRead"] = True
        items: list[dict[str, Any]] = []
        while True:
            if limit is not None:
                request["Limit"] = limit - len(items)
            response = self.client.query(**request)
            items.extend(self.plain(i) for i in response.get("Items", []))
            key = response.get("LastEvaluatedKey")
            if not key or (limit is not None and len(items) >= limit):
                return items
            request["ExclusiveStartKey"] = key
