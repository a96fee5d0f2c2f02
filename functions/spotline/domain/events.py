"""Typed views of the events spotline receives, accepting the shapes AWS really sends.

* S3 ``Object Created`` through EventBridge: ``detail.bucket.name``, ``detail.object.key``
  (URL-encoded the way S3 notifications encode it: ``red flower.jpg`` -> ``red+flower.jpg``),
  ``etag``, optional ``version-id``, ``size``. A key that cannot be an encoded one (it holds
  a space or a non-ASCII character, as emulators send) is taken as it is.
* S3 ``Object Deleted`` through EventBridge: the same fields, ``deletion-type``
  (``Delete Marker Created`` or ``Permanently Deleted``) and no size.
* ``SageMaker Training Job State Change`` and ``SageMaker HyperParameter Tuning Job State Change``:
  ``Tags`` as ``{}``, a map, or a list of
  ``{Key, Value}``; timestamps as epoch milliseconds (int or float) or ISO-8601 text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus


class EventShapeError(ValueError):
    """The event lacks a field spotline needs; it is not retried (it would fail the same way)."""


@dataclass(frozen=True)
class ObjectCreated:
    bucket: str
    key: str
    etag: str
    size: int
    version_id: str | None
    sequencer: str = ""  # S3's order of the events of one key: a redelivery has the same one

    @property
    def version_or_etag(self) -> str:
        return self.version_id or self.etag

    @property
    def upload_id(self) -> str:
        """What tells this upload from another of the same key (the same for a redelivered event)."""
        return self.version_id or self.sequencer or self.etag


def parse_object_created(event: Mapping[str, Any]) -> ObjectCreated:
    try:
        detail = event["detail"]
        obj = detail["object"]
        bucket = detail["bucket"]["name"]
        key = obj["key"]
    except (KeyError, TypeError) as e:
        raise EventShapeError(f"not an S3 Object Created event: missing {e}") from e
    if not isinstance(key, str) or not isinstance(bucket, str):
        raise EventShapeError("S3 event with a non-text bucket or key")
    key = decode_event_key(key)
    try:
        size = int(obj.get("size") or 0)
    except (TypeError, ValueError) as e:
        raise EventShapeError(f"S3 event with an unreadable object size {obj.get('size')!r}") from e
    etag = str(obj.get("etag") or obj.get("eTag") or "").strip('"')
    return ObjectCreated(
        bucket=bucket,
        key=key,
        etag=etag,
        size=size,
        version_id=obj.get("version-id") or None,
        sequencer=str(obj.get("sequencer") or ""),
    )


@dataclass(frozen=True)
class ObjectDeleted:
    """S3 ``Object Deleted``: a delete marker created (versioned bucket) or a version removed."""

    bucket: str
    key: str
    version_id: str | None
    deletion_type: str  # "Delete Marker Created" or "Permanently Deleted"

    @property
    def removed_version(self) -> str | None:
        """The version that no longer exists (None when a delete marker hides the current one)."""
        return self.version_id if self.deletion_type == PERMANENTLY_DELETED else None


PERMANENTLY_DELETED = "Permanently Deleted"


def parse_object_deleted(event: Mapping[str, Any]) -> ObjectDeleted:
    try:
        detail = event["detail"]
        bucket = detail["bucket"]["name"]
        key = detail["object"]["key"]
    except (KeyError, TypeError) as e:
        raise EventShapeError(f"not an S3 Object Deleted event: missing {e}") from e
    if event.get("detail-type") != "Object Deleted":
        raise EventShapeError(f"not an S3 Object Deleted event: {event.get('detail-type')!r}")
    if not isinstance(key, str) or not isinstance(bucket, str):
        raise EventShapeError("S3 event with a non-text bucket or key")
    return ObjectDeleted(
        bucket=bucket,
        key=decode_event_key(key),
        version_id=detail["object"].get("version-id") or None,
        deletion_type=str(detail.get("deletion-type") or ""),
    )


def decode_event_key(key: str) -> str:
    """The object key of an S3 event: URL-decoded unless it is visibly already raw."""
    if " " in key or not key.isascii():
        return key
    return unquote_plus(key)


@dataclass(frozen=True)
class TrainingJobStateChange:
    job_name: str
    status: str
    secondary_status: str
    failure_reason: str
    tags: Mapping[str, str] = field(default_factory=dict)
    tuning_job_arn: str = ""  # a trial of a hyperparameter tuning job (which the tuner launched)


def parse_timestamp(value: Any) -> datetime | None:
    """Epoch seconds or milliseconds (int, float or numeric text), ISO-8601 text or a datetime, as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        raise EventShapeError(f"timestamp {value!r}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError as e:
                raise EventShapeError(f"unreadable timestamp {value!r}") from e
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError) as e:
            raise EventShapeError(f"unreadable timestamp {value!r}") from e
    raise EventShapeError(f"unreadable timestamp {value!r}")


def parse_tags(value: Any) -> dict[str, str]:
    if not value:
        return {}
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list):
        return {
            str(t["Key"]): str(t.get("Value", "")) for t in value if isinstance(t, Mapping) and "Key" in t
        }
    raise EventShapeError(f"unreadable Tags {value!r}")


def parse_training_job_state_change(event: Mapping[str, Any]) -> TrainingJobStateChange:
    try:
        detail = event["detail"]
        name = detail["TrainingJobName"]
        status = detail["TrainingJobStatus"]
    except (KeyError, TypeError) as e:
        raise EventShapeError(f"not a SageMaker Training Job State Change event: missing {e}") from e
    return TrainingJobStateChange(
        job_name=str(name),
        status=str(status),
        secondary_status=str(detail.get("SecondaryStatus") or ""),
        failure_reason=str(detail.get("FailureReason") or ""),
        tags=parse_tags(detail.get("Tags")),
        tuning_job_arn=str(detail.get("TuningJobArn") or ""),
    )


@dataclass(frozen=True)
class TuningJobStateChange:
    """``SageMaker HyperParameter Tuning Job State Change``: the name, the status, the tags."""

    name: str
    status: str
    tags: Mapping[str, str] = field(default_factory=dict)


def parse_tuning_job_state_change(event: Mapping[str, Any]) -> TuningJobStateChange:
    try:
        detail = event["detail"]
        name = detail["HyperParameterTuningJobName"]
        status = detail["HyperParameterTuningJobStatus"]
    except (KeyError, TypeError) as e:
        raise EventShapeError(
            f"not a SageMaker HyperParameter Tuning Job State Change event: missing {e}"
        ) from e
    return TuningJobStateChange(name=str(name), status=str(status), tags=parse_tags(detail.get("Tags")))
