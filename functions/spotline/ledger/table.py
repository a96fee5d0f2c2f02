"""The ledger's one DynamoDB table, seen through a small adapter.

Single-table layout (``pk``/``sk`` strings, sparse index ``gsi1`` on ``gsi1pk``/``gsi1sk``):

| item                | pk                | sk                 | gsi1pk         | gsi1sk                 |
|---------------------|-------------------|--------------------|----------------|------------------------|
| run                 | ``RUN#<run id>``  | ``RUN``            | ``RUNS``       | ``<created>#<run id>`` |
| attempt             | ``RUN#<run id>``  | ``ATTEMPT#NN``     |                |                        |
| notice sent (dedup) | ``RUN#<run id>``  | ``NOTICE#<what>``  |                |                        |

Other modules add their own item kinds with their own ``pk`` prefixes. Every write that moves
state is conditional; a lost condition becomes :class:`ConditionFailed`, never an error string.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from spotline import aws

GSI1 = "gsi1"


class ConditionFailed(Exception):
    """A conditional write found the item in another state than required."""


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {k: _to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    return value


class LedgerTable:
    """Typed access to the table: put-if-absent, conditional update, get, query."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self.name = table_name
        self._client = client
        self._ser = TypeSerializer()
        self._de = TypeDeserializer()

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("dynamodb")
        return self._client

    def _item(self, attrs: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self._ser.serialize(_to_dynamo(v)) for k, v in attrs.items() if v is not None}

    def _plain(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {k: _from_dynamo(self._de.deserialize(v)) for k, v in item.items()}

    def put_new(self, item: Mapping[str, Any]) -> None:
        """Write ``item`` only if no item has its key; otherwise :class:`ConditionFailed`."""
        try:
            self.client.put_item(
                TableName=self.name, Item=self._item(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except self.client.exceptions.ConditionalCheckFailedException as e:
            raise ConditionFailed(f"{item['pk']}/{item['sk']} exists") from e

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.name, Key=self._item({"pk": pk, "sk": sk}), ConsistentRead=True
        )
        item = response.get("Item")
        return self._plain(item) if item else None

    def delete(self, pk: str, sk: str) -> None:
        """Remove one item (absent is fine)."""
        self.client.delete_item(TableName=self.name, Key=self._item({"pk": pk, "sk": sk}))

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
        """SET/ADD/REMOVE attributes under an optional condition; returns the new item."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        clauses = []
        sets = []
        # DynamoDB has no null here: setting None means removing the attribute.
        remove = (*remove, *(k for k, v in set_values.items() if v is None))
        set_values = {k: v for k, v in set_values.items() if v is not None}
        for i, (k, v) in enumerate(set_values.items()):
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
        request: dict[str, Any] = {
            "TableName": self.name,
            "Key": self._item({"pk": pk, "sk": sk}),
            "UpdateExpression": " ".join(clauses),
            "ReturnValues": "ALL_NEW",
        }
        if condition:
            request["ConditionExpression"] = condition
            for k, v in (condition_values or {}).items():
                if k.startswith("#"):
                    names[k] = v
                else:
                    values[k] = v
        if names:
            request["ExpressionAttributeNames"] = names
        if values:
            request["ExpressionAttributeValues"] = self._item(values)
        try:
            response = self.client.update_item(**request)
        except self.client.exceptions.ConditionalCheckFailedException as e:
            raise ConditionFailed(f"{pk}/{sk}: {condition}") from e
        return self._plain(response["Attributes"])

    def query(
        self,
        pk: str,
        sk_prefix: str = "",
        *,
        index: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Items under ``pk`` whose sort key starts with ``sk_prefix`` (every page)."""
        pk_name, sk_name = ("gsi1pk", "gsi1sk") if index else ("pk", "sk")
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "#pk = :pk" + (" AND begins_with(#sk, :sk)" if sk_prefix else ""),
            "ExpressionAttributeNames": {"#pk": pk_name, **({"#sk": sk_name} if sk_prefix else {})},
            "ExpressionAttributeValues": self._item({":pk": pk, **({":sk": sk_prefix} if sk_prefix else {})}),
            "ScanIndexForward": not newest_first,
        }
        if index:
            request["IndexName"] = index
        else:
            request["ConsistentRead"] = True
        items: list[dict[str, Any]] = []
        while True:
            if limit is not None:
                request["Limit"] = limit - len(items)
            response = self.client.query(**request)
            items.extend(self._plain(i) for i in response.get("Items", []))
            key = response.get("LastEvaluatedKey")
            if not key or (limit is not None and len(items) >= limit):
                return items
            request["ExclusiveStartKey"] = key
