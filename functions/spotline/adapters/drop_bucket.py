"""The drop bucket: bounded reads of what users wrote, and writes only under spotline's prefixes.

Every read takes a byte cap (a larger object raises :class:`ObjectTooLarge` before more than
``cap + 1`` bytes are held); a missing object or version raises :class:`ObjectMissing`. Every
write goes through :meth:`DropBucket.put`, which refuses any key outside ``runs/`` and
``results/`` and encrypts with the stack's key: nothing spotline writes can land where users
write and start a job.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from spotline.adapters import aws
from spotline.domain import layout
from spotline.domain.settings import Settings

_MISSING = frozenset({"NoSuchKey", "NoSuchVersion", "404", "NoSuchBucket"})


class ObjectMissing(Exception):
    """The object (or the version asked for) is not there."""


class ObjectTooLarge(Exception):
    """The object is larger than the cap its reader set."""

    def __init__(self, uri: str, cap: int) -> None:
        self.uri, self.cap = uri, cap
        super().__init__(f"{uri} is larger than {cap} bytes")


class ObjectUnreadable(Exception):
    """spotline may not read or list it (access denied, or another account's bucket)."""


_DENIED = frozenset({"AccessDenied", "403", "AllAccessDisabled", "InvalidObjectState"})


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://bucket/key``; ValueError for anything else."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"not an S3 object URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


class DropBucket:
    s3 = aws.ServiceClient("s3")

    def __init__(self, settings: Settings, s3: Any | None = None) -> None:
        self.name = settings.bucket
        self.kms_key_arn = settings.kms_key_arn
        self.s3 = s3

    def uri(self, key: str) -> str:
        return f"s3://{self.name}/{key}"

    # -- reads ----------------------------------------------------------------------------------------

    def read(self, key: str, *, cap: int, version_id: str | None = None, bucket: str | None = None) -> bytes:
        """The object's bytes, at most ``cap`` of them."""
        data, _ = self.read_versioned(key, cap=cap, version_id=version_id, bucket=bucket)
        return data

    def read_versioned(
        self, key: str, *, cap: int, version_id: str | None = None, bucket: str | None = None
    ) -> tuple[bytes, str]:
        """``(bytes, version id or ETag)`` of the object, at most ``cap`` bytes."""
        from botocore.exceptions import ClientError

        bucket = bucket or self.name
        request: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            request["VersionId"] = version_id
        try:
            response = self.s3.get_object(**request)
        except ClientError as e:
            if aws.error_code(e) in _MISSING:
                raise ObjectMissing(f"s3://{bucket}/{key}") from e
            raise
        body = response["Body"]
        uri = f"s3://{bucket}/{key}"
        try:
            if int(response.get("ContentLength") or 0) > cap:
                raise ObjectTooLarge(uri, cap)
            data: bytes = body.read(cap + 1)
        finally:
            body.close()
        if len(data) > cap:
            raise ObjectTooLarge(uri, cap)
        return data, str(response.get("VersionId") or response.get("ETag", "")).strip('"')

    def current_version(self, key: str) -> tuple[str, str] | None:
        """``(version id, ETag)`` of the key's current object, None if there is none (deleted)."""
        from botocore.exceptions import ClientError

        try:
            response = self.s3.head_object(Bucket=self.name, Key=key)
        except ClientError as e:
            if aws.error_code(e) in _MISSING:
                return None
            raise
        return str(response.get("VersionId") or ""), str(response.get("ETag", "")).strip('"')

    def read_tail(self, key: str, *, cap: int, bucket: str | None = None) -> tuple[bytes, bool]:
        """``(the object's last cap bytes at most, whether there was more before them)``."""
        from botocore.exceptions import ClientError

        bucket = bucket or self.name
        try:
            response = self.s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=-{cap}")
        except ClientError as e:
            if aws.error_code(e) in _MISSING:
                raise ObjectMissing(f"s3://{bucket}/{key}") from e
            if aws.error_code(e) == "InvalidRange":  # an empty object has no last bytes
                return b"", False
            raise
        body = response["Body"]
        try:
            data: bytes = body.read(cap + 1)[-cap:]
        finally:
            body.close()
        total = str(response.get("ContentRange") or "").rpartition("/")[2]
        return data, total.isdigit() and int(total) > len(data)

    def has_objects(self, prefix: str, *, bucket: str | None = None) -> bool:
        """Whether any object's key starts with ``prefix`` (one ListObjectsV2 call of one key)."""
        from botocore.exceptions import ClientError

        bucket = bucket or self.name
        try:
            response = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        except ClientError as e:
            code = aws.error_code(e)
            if code == "NoSuchBucket":
                return False
            if code in _DENIED:
                raise ObjectUnreadable(f"s3://{bucket}/{prefix}: {code}") from e
            raise
        return bool(response.get("KeyCount") or response.get("Contents"))

    def read_head(self, key: str, *, cap: int, bucket: str | None = None) -> tuple[bytes, int]:
        """``(at most cap bytes from the start, the object's whole size)``: a bounded look at a large
        object. :class:`ObjectMissing` or :class:`ObjectUnreadable` when it cannot be had."""
        from botocore.exceptions import ClientError

        bucket = bucket or self.name
        try:
            response = self.s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{max(0, cap - 1)}")
        except ClientError as e:
            code = aws.error_code(e)
            if code in _MISSING:
                raise ObjectMissing(f"s3://{bucket}/{key}") from e
            if code == "InvalidRange":  # an empty object
                return b"", 0
            if code in _DENIED:
                raise ObjectUnreadable(f"s3://{bucket}/{key}: {code}") from e
            raise
        body = response["Body"]
        try:
            data: bytes = body.read(cap)
        finally:
            body.close()
        total = str(response.get("ContentRange") or "").rpartition("/")[2]
        size = int(total) if total.isdigit() else int(response.get("ContentLength") or len(data))
        return data, size

    def read_uri(self, uri: str, *, cap: int) -> bytes:
        """``s3://bucket/key`` (of any bucket the function may read), at most ``cap`` bytes."""
        bucket, key = split_s3_uri(uri)
        return self.read(key, cap=cap, bucket=bucket)

    # -- writes ---------------------------------------------------------------------------------------

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
