"""Functions for the dispatcher's own test: they leave objects in S3 so the test can read what happened."""

from __future__ import annotations

from typing import Any

CLIENTS: dict[str, Any] = {}
BUCKET = "dispatch-test"


def _put(key: str) -> None:
    CLIENTS["s3"].put_object(Bucket=BUCKET, Key=key, Body=b"")


def batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Processes good records; reports the ones whose body starts with 'bad' as failed."""
    failures = []
    records = event["Records"]
    for record in records:
        _put(f"batches/{context.aws_request_id}/{len(records)}/{record['body']}")
        if record["body"].startswith("bad"):
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def always_fails(event: dict[str, Any], context: Any) -> None:
    _put(f"attempts/{event['id']}/{context.aws_request_id}")
    raise RuntimeError("this function always fails")


def tick(event: dict[str, Any], context: Any) -> None:
    _put(f"ticks/{event['detail-type']}/{context.aws_request_id}")
