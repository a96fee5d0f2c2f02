"""The drop bucket: bounded reads of what users wrote, and writes only under spotline's prefixes.

Every read takes a byte cap (a larger object raises :class:`ObjectTooLarge` before more than
``cap + 1`` bytes are held); a missing object or version raises :class:`ObjectMissing`. Large
objects are read as a stream (:meth:`DropBucket.open_stream`, :meth:`DropBucket.lines`) and
written piece by piece (:meth:`DropBucket.writer`: one PutObject while the object is small, a
multipart upload of :data:`WRITE_PART_BYTES` parts once it is not), so a function's memory
does not grow with an object's size. Every write refuses any key outside ``runs/`` and
``results/`` and encrypts with the stack's key: nothing spotline writes can land where users
write and start a job.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any

from spotline.adapters import aws
from spotline.domain import layout
from spotline.domain.settings import Settings

logger = logging.getLogger(__name__)

_MISSING = frozenset({"NoSuchKey", "NoSuchVersion", "404", "NoSuchBucket", "NotFound"})
# S3 refuses multipart parts under 5 MiB (but the last); 8 MiB parts keep a writer's buffer small
# and the number of UploadPart calls at one per 8 MiB written.
WRITE_PART_BYTES = 8 * 1024 * 1024
MAX_PARTS = 10_000  # S3's limit per multipart upload
READ_CHUNK_BYTES = 256 * 1024


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

    def open_stream(self, key: str, *, cap: int, bucket: str | None = None) -> CappedStream:
        """The object as a file-like stream that raises :class:`ObjectTooLarge` past ``cap`` bytes."""
        from botocore.exceptions import ClientError

        bucket = bucket or self.name
        uri = f"s3://{bucket}/{key}"
        try:
            response = self.s3.get_object(Bucket=bucket, Key=key)
        except ClientError as e:
            if aws.error_code(e) in _MISSING:
                raise ObjectMissing(uri) from e
            raise
        stream = CappedStream(response["Body"], uri, cap)
        if int(response.get("ContentLength") or 0) > cap:
            stream.close()
            raise ObjectTooLarge(uri, cap)
        return stream

    def lines(self, key: str, *, cap: int, bucket: str | None = None) -> Iterator[bytes]:
        """The object's lines (without their line ends), read in chunks: at most ``cap`` bytes in all.

        The object is opened at once (:class:`ObjectMissing` here, not at the first line)."""
        stream = self.open_stream(key, cap=cap, bucket=bucket)

        def lines() -> Iterator[bytes]:
            with stream:
                yield from stream.lines()

        return lines()

    def exists(self, key: str, *, bucket: str | None = None) -> bool:
        """Whether the object is there (HeadObject)."""
        from botocore.exceptions import ClientError

        try:
            self.s3.head_object(Bucket=bucket or self.name, Key=key)
        except ClientError as e:
            if aws.error_code(e) in _MISSING:
                return False
            raise
        return True

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
        with self.writer(key, "application/x-ndjson") as out:
            for line in lines:
                out.write(json.dumps(line, ensure_ascii=False, default=str).encode() + b"\n")

    def writer(self, key: str, content_type: str) -> ObjectWriter:
        """An object written piece by piece (use it as a context manager: an error aborts the upload)."""
        return ObjectWriter(self.s3, self.name, _ours(key), content_type, self._sse())


class CappedStream:
    """An S3 object body read at most ``cap`` bytes far; reading past it raises :class:`ObjectTooLarge`."""

    def __init__(self, body: Any, uri: str, cap: int) -> None:
        self.body, self.uri, self.cap = body, uri, cap
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        room = self.cap + 1 - self.consumed
        data: bytes = self.body.read(room if size is None or size < 0 else min(size, room))
        self.consumed += len(data)
        if self.consumed > self.cap:
            raise ObjectTooLarge(self.uri, self.cap)
        return data

    def lines(self) -> Iterator[bytes]:
        """Lines split on ``\\n`` (a trailing ``\\r`` dropped), one chunk of the body held at a time."""
        rest = b""
        while True:
            chunk = self.read(READ_CHUNK_BYTES)
            if not chunk:
                break
            *complete, rest = (rest + chunk).split(b"\n")
            for line in complete:
                yield line.rstrip(b"\r")
        if rest:
            yield rest.rstrip(b"\r")

    def close(self) -> None:
        self.body.close()

    def __enter__(self) -> CappedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ObjectWriter:
    """One object, written in pieces: a PutObject if it stays under one part, else a multipart upload.

    At most :data:`WRITE_PART_BYTES` (plus the piece being written) are held; every part but the
    last is at least that large, above S3's 5 MiB minimum. Leaving the ``with`` block on an error
    aborts the upload (and the bucket's lifecycle rule removes uploads nobody completed or aborted).
    """

    def __init__(self, s3: Any, bucket: str, key: str, content_type: str, sse: Mapping[str, str]) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
        self.content_type, self.sse = content_type, dict(sse)
        self.buffer: list[bytes] = []
        self.buffered = 0
        self.written = 0
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        self.buffer.append(data)
        self.buffered += len(data)
        self.written += len(data)
        if self.buffered >= WRITE_PART_BYTES:
            self._upload_part()

    def _upload_part(self) -> None:
        if self.upload_id is None:
            created = self.s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType=self.content_type, **self.sse
            )
            self.upload_id = str(created["UploadId"])
        number = len(self.parts) + 1
        if number > MAX_PARTS:
            raise ValueError(f"s3://{self.bucket}/{self.key}: more than {MAX_PARTS} parts")
        body, self.buffer, self.buffered = b"".join(self.buffer), [], 0
        response = self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body
        )
        self.parts.append({"PartNumber": number, "ETag": response["ETag"]})

    def close(self) -> None:
        """Complete the object (PutObject when it never needed a second part)."""
        if self.upload_id is None:
            body, self.buffer, self.buffered = b"".join(self.buffer), [], 0
            self.s3.put_object(
                Bucket=self.bucket, Key=self.key, Body=body, ContentType=self.content_type, **self.sse
            )
            return
        if self.buffer:
            self._upload_part()
        self.s3.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )

    def abort(self) -> None:
        self.buffer, self.buffered = [], 0
        if self.upload_id is not None:
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
            self.upload_id = None

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
            return
        try:
            self.abort()
        except Exception:  # the error that got us here matters more; the lifecycle rule cleans up
            logger.warning("could not abort the upload of s3://%s/%s", self.bucket, self.key, exc_info=True)


def _ours(key: str) -> str:
    if not key.startswith(layout.SPOTLINE_PREFIXES):
        allowed = ", ".join(layout.SPOTLINE_PREFIXES)
        raise ValueError(f"spotline writes only under {allowed}: refused {key!r}")
    return key
