"""The sample events in events/ — the same files `sam local invoke -e` uses — loaded for tests."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of ``events/<name>`` (``.json`` optional)."""
    path = EVENTS_DIR / (name if name.endswith(".json") else f"{name}.json")
    return copy.deepcopy(json.loads(path.read_text(encoding="utf-8")))


def _sequencer(*parts: object) -> str:
    """A sequencer that is the same for a redelivered event and differs from upload to upload."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:18].upper()


def s3_object_created(
    bucket: str,
    key: str,
    *,
    etag: str,
    size: int,
    version_id: str | None = None,
    encode_key: bool = True,
    sequencer: str | None = None,
) -> dict[str, Any]:
    """The sample Object Created event re-aimed at ``bucket``/``key`` (key URL-encoded as S3 sends it)."""
    from urllib.parse import quote_plus

    event = load_event("s3_config_created")
    event["resources"] = [f"arn:aws:s3:::{bucket}"]
    detail = event["detail"]
    detail["bucket"]["name"] = bucket
    obj = detail["object"]
    obj["key"] = quote_plus(key, safe="/") if encode_key else key
    obj["etag"] = etag
    obj["size"] = size
    obj["sequencer"] = sequencer or _sequencer(bucket, key, etag, version_id)
    if version_id is None:
        obj.pop("version-id", None)
    else:
        obj["version-id"] = version_id
    return event


def s3_object_deleted(
    bucket: str, key: str, *, version_id: str | None, permanently: bool = False
) -> dict[str, Any]:
    """The sample Object Deleted event (a delete marker, or a version removed) re-aimed at ``key``."""
    from urllib.parse import quote_plus

    event = load_event("s3_config_deleted")
    event["resources"] = [f"arn:aws:s3:::{bucket}"]
    detail = event["detail"]
    detail["bucket"]["name"] = bucket
    detail["object"]["key"] = quote_plus(key, safe="/")
    detail["object"]["sequencer"] = _sequencer(bucket, key, "deleted", version_id)
    if version_id is None:
        detail["object"].pop("version-id", None)
    else:
        detail["object"]["version-id"] = version_id
    detail["deletion-type"] = "Permanently Deleted" if permanently else "Delete Marker Created"
    return event
