"""Where an ended attempt left its run: the checkpoint pointer in S3, read in bounded work.

Two small reads at most (the pointer, :data:`spotline.domain.progress.MAX_POINTER_BYTES`; a
HeadObject of the checkpoint it names) in the job's own ``CheckpointConfig.S3Uri``, as
DescribeTrainingJob reports it, so a job adopted from elsewhere is read where it wrote. Progress
is a record, never a gate: a pointer that is absent, unreadable, not ours, or names a file that
is not in S3 is "unknown" (None), never an error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from spotline.adapters.drop_bucket import DropBucket, split_s3_uri
from spotline.domain.progress import MAX_POINTER_BYTES, iteration_of, pointed_checkpoint, pointer_key

logger = logging.getLogger(__name__)


def checkpoint_uri_of(describe: Mapping[str, Any]) -> str | None:
    uri = (describe.get("CheckpointConfig") or {}).get("S3Uri")
    return str(uri) if uri else None


def writes_our_pointer(describe: Mapping[str, Any], image_uri: str) -> bool:
    """Whether the job ran spotline's own image (which always writes the pointer)."""
    return str((describe.get("AlgorithmSpecification") or {}).get("TrainingImage") or "") == image_uri


def checkpoint_iteration(bucket: DropBucket, checkpoint_uri: str | None) -> int | None:
    """The iteration of the checkpoint the run's pointer names in S3, or None when not known."""
    if not checkpoint_uri:
        return None
    try:
        source, prefix = split_s3_uri(checkpoint_uri.rstrip("/") + "/")
        name = pointed_checkpoint(bucket.read(pointer_key(prefix), cap=MAX_POINTER_BYTES, bucket=source))
        if name is None or not bucket.exists(prefix + name, bucket=source):
            return None
    except Exception as e:  # absent, denied, too large, throttled: progress stays unknown
        logger.info("no checkpoint pointer read under %s: %s", checkpoint_uri, e)
        return None
    return iteration_of(name)
