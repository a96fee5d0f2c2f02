"""Records as plain values, for JSON documents and ledger items: one conversion for every record.

Enums become their values, dataclasses mappings of their fields, tuples lists; sets stay sets
(DynamoDB stores them; JSON documents are given lists).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from enum import Enum
from typing import Any


def plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return {plain(v) for v in value}
    return value


def plain_fields(record: Any, *, without: tuple[str, ...] = ()) -> dict[str, Any]:
    """The record's fields as a plain mapping, leaving out ``without``."""
    fields: dict[str, Any] = plain(record)
    return {k: v for k, v in fields.items() if k not in without}
