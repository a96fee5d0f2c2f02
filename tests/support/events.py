"""The sample events in events/ — the same files `sam local invoke -e` uses — loaded for tests."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of ``events/<name>`` (``.json`` optional)."""
    path = EVENTS_DIR / (name if name.endswith(".json") else f"{name}.json")
    return copy.deepcopy(json.loads(path.read_text(encoding="utf-8")))


def s3_object_created(
    bucket: str, key: str, *, etag: str, size: int, version_id: str | None = None, encode_key: bool = True
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
    if version_id is None:
        obj.pop("version-id", None)
    else:
        obj["version-id"] = version_id
    return event
