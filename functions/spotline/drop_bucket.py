"""spotline's writes to the drop bucket: only under its own prefixes, encrypted with the stack's key.

Every object spotline writes goes through :meth:`DropBucket.put`, which refuses any key outside
``runs/`` and ``results/``: nothing spotline writes can land where users write and start a job.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from spotline import aws, layout
from spotline.settings import Settings


class DropBucket:
    def __init__(self, settings: Settings, s3: Any | None = None) -> None:
        self.name = settings.bucket
        self.kms_key_arn = settings.kms_key_arn
        self._s3 = s3

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = aws.client("s3")
        return self._s3

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self.s3.put_object(
            Bucket=self.name, Key=_ours(key), Body=body, ContentType=content_type, **self._sse()
        )

    def copy(self, source_key: str, key: str) -> None:
        """Snapshot one of the bucket's objects under spotline's prefixes."""
        source = {"Bucket": self.name, "Key": source_key}
        self.s3.copy_object(Bucket=self.name, Key=_ours(key), CopySource=source, **self._sse())

    def _sse(self) -> dict[str, str]:
        if not self.kms_key_arn:
            return {}
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_arn}

    def put_json(self, key: str, document: Mapping[str, Any]) -> None:
        body = json.dumps(document, indent=2, ensure_ascii=False, default=str).encode()
        self.put(key, body, "application/json")

    def put_lines(self, key: str, lines: Iterable[Mapping[str, Any]]) -> None:
        body = "".join(json.dumps(line, ensure_ascii=False, default=str) + "\n" for line in lines)
        self.put(key, body.encode(), "application/x-ndjson")


def _ours(key: str) -> str:
    if not key.startswith(layout.SPOTLINE_PREFIXES):
        allowed = ", ".join(layout.SPOTLINE_PREFIXES)
        raise ValueError(f"spotline writes only under {allowed}: refused {key!r}")
    return key
