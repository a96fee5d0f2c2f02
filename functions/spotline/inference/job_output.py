"""Reading one inference job's output back: its ``model.tar.gz``, streamed, every size capped.

The container leaves ``predictions.jsonl`` (one JSON object per image) and ``summary.json`` in the
job's ``model.tar.gz``. The archive is read as a stream from S3 (never whole in memory, never
written to disk, so member names cannot escape anywhere): at most :data:`MAX_ARCHIVE_BYTES`
compressed, :data:`MAX_ARCHIVE_MEMBERS` members declaring :data:`MAX_ARCHIVE_TOTAL_BYTES`, and
:data:`MAX_PREDICTIONS_BYTES` of predictions — one part of a batch, at most ``BatchMaxImages``
images. What is kept is each line's bytes with its image key, sorted by key: the parts of a close
are consecutive runs of the batch's sorted keys, so the parts' lines one after the other are the
whole batch in key order.

Output that cannot be used — no archive, not a tar, no ``predictions.jsonl``, a line that is not
an object naming its image, anything over a cap — raises
:class:`spotline.runs.publish.OutputUnusable`: the run fails with one alert.
"""

from __future__ import annotations

import json
import tarfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, cast

from spotline.adapters.drop_bucket import DropBucket, ObjectMissing, ObjectTooLarge, split_s3_uri
from spotline.runs.publish import OutputUnusable

PREDICTIONS_FILE = "predictions.jsonl"
SUMMARY_FILE = "summary.json"
MAX_ARCHIVE_BYTES = 128 * 1024 * 1024
MAX_ARCHIVE_MEMBERS = 1_000
MAX_ARCHIVE_TOTAL_BYTES = 1024 * 1024 * 1024
# One part's predictions, held as bytes: 25 KiB per image at 5,000 images per job.
MAX_PREDICTIONS_BYTES = 128 * 1024 * 1024
MAX_SUMMARY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class PartOutput:
    """One job's predictions as ``(image key, JSON line)`` in key order, and its container summary."""

    lines: list[tuple[str, bytes]]
    summary: Mapping[str, Any] = field(default_factory=dict)

    def raw_lines(self) -> Iterator[bytes]:
        return (raw for _, raw in self.lines)


def container_settings(summary: Mapping[str, Any]) -> tuple[tuple[str, ...], Any]:
    """The classes and score threshold a container's ``summary.json`` reports."""
    classes = summary.get("classes")
    names = tuple(str(c) for c in classes) if isinstance(classes, list) else ()
    return names, summary.get("score_threshold")


def image_of(raw: bytes, where: str) -> str:
    """The ``image`` of one prediction line; :class:`OutputUnusable` for anything but such an object."""
    try:
        line = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise OutputUnusable(f"{where}: not JSON ({e})") from e
    if not isinstance(line, dict) or not isinstance(line.get("image"), str):
        raise OutputUnusable(f"{where}: expected an object with an 'image' key")
    return str(line["image"])


def read_part_output(bucket: DropBucket, artifact_uri: str) -> PartOutput:
    """The predictions and summary of the job whose ``model.tar.gz`` is at ``artifact_uri``."""
    if not artifact_uri:
        raise OutputUnusable("the job has no model artifact")
    try:
        source, key = split_s3_uri(artifact_uri)
    except ValueError as e:
        raise OutputUnusable(str(e)) from e
    try:
        stream = bucket.open_stream(key, cap=MAX_ARCHIVE_BYTES, bucket=source)
    except ObjectMissing as e:
        raise OutputUnusable(f"{artifact_uri} is missing") from e
    except ObjectTooLarge as e:
        raise OutputUnusable(str(e)) from e
    try:
        with stream, tarfile.open(fileobj=cast(IO[bytes], stream), mode="r|*") as tar:
            return _read_members(tar, artifact_uri)
    except ObjectTooLarge as e:
        raise OutputUnusable(str(e)) from e
    except (tarfile.TarError, zlib.error, EOFError, OSError) as e:
        raise OutputUnusable(f"{artifact_uri} is not a readable tar archive ({type(e).__name__}: {e})") from e


def _read_members(tar: tarfile.TarFile, uri: str) -> PartOutput:
    lines: list[tuple[str, bytes]] | None = None
    summary: dict[str, Any] = {}
    members = declared = 0
    for member in tar:  # a stream: each member once, in archive order
        members += 1
        declared += max(0, member.size)
        if members > MAX_ARCHIVE_MEMBERS or declared > MAX_ARCHIVE_TOTAL_BYTES:
            raise OutputUnusable(
                f"{uri} holds more than {MAX_ARCHIVE_MEMBERS} members or "
                f"{MAX_ARCHIVE_TOTAL_BYTES} bytes: not an inference job's output"
            )
        name = member.name.rsplit("/", 1)[-1]
        if not member.isfile() or name not in (PREDICTIONS_FILE, SUMMARY_FILE):
            continue
        handle = tar.extractfile(member)
        if handle is None:  # pragma: no cover - regular files always have a handle
            continue
        if name == PREDICTIONS_FILE:
            if member.size > MAX_PREDICTIONS_BYTES:
                raise OutputUnusable(f"{uri}: {member.name} is larger than {MAX_PREDICTIONS_BYTES} bytes")
            lines = _prediction_lines(handle, f"{uri}: {member.name}")
        else:
            summary = _summary(handle, f"{uri}: {member.name}", member.size)
    if lines is None:
        raise OutputUnusable(f"{uri} holds no {PREDICTIONS_FILE}: not an inference job's output")
    lines.sort(key=lambda pair: pair[0])
    return PartOutput(lines, summary)


def _prediction_lines(handle: IO[bytes], where: str) -> list[tuple[str, bytes]]:
    lines: list[tuple[str, bytes]] = []
    for number, text in enumerate(handle, start=1):
        raw = text.strip()
        if raw:
            lines.append((image_of(raw, f"{where} line {number}"), raw + b"\n"))
    return lines


def _summary(handle: IO[bytes], where: str, size: int) -> dict[str, Any]:
    if size > MAX_SUMMARY_BYTES:
        raise OutputUnusable(f"{where} is larger than {MAX_SUMMARY_BYTES} bytes")
    try:
        document = json.loads(handle.read(MAX_SUMMARY_BYTES + 1))
    except (UnicodeDecodeError, ValueError) as e:
        raise OutputUnusable(f"{where}: not JSON ({e})") from e
    if not isinstance(document, dict):
        raise OutputUnusable(f"{where}: expected a JSON object")
    return document
