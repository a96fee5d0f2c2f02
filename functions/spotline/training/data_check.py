"""Before a training job is paid for: the data its config names is there, and spotline's image can
read it.

SageMaker starts a job whatever its channels hold; an empty prefix or a missing ``annotations.json``
then fails minutes later, billed, with a message about ``/opt/ml/input/data/train`` rather than the S3
prefix the user wrote. So at launch, for every channel: its prefix has objects; and for the channels
spotline's image reads (``train``, ``val``; not with a ``job.image`` of your own, which reads its own
format): ``annotations.json`` at the top of the prefix is COCO the image can load. The read is
bounded: a file up to :data:`FULL_CHECK_BYTES` is parsed and its structure checked; a larger one is
checked from its first :data:`HEAD_BYTES` only (that it is a JSON object that starts like COCO), as
parsing it would not fit the function's memory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from spotline.adapters.drop_bucket import DropBucket, ObjectMissing, ObjectUnreadable
from spotline.config import Issue, RunConfig
from spotline.config.job import IMAGE_CHANNELS
from spotline.config.root import resolve_channel_uri

ANNOTATIONS = "annotations.json"
FULL_CHECK_BYTES = 8 * 1024 * 1024
HEAD_BYTES = 64 * 1024
COCO_KEYS = ("images", "annotations", "categories")
IMAGE_KEYS = ("id", "file_name", "width", "height")


def data_issues(bucket: DropBucket, config: RunConfig) -> list[Issue]:
    """Every problem with the data of ``config``'s channels, each naming its S3 prefix."""
    issues = []
    for name, uri in config.job.channels.items():
        source, prefix = resolve_channel_uri(uri, bucket.name)
        where = f"s3://{source}/{prefix}"
        path = f"job.channels.{name}"
        try:
            if not bucket.has_objects(prefix, bucket=source):
                issues.append(Issue(path, uri, f"{where} holds no objects: the job would get no {name} data"))
                continue
            # only spotline's image reads COCO annotations; an image of your own reads its own format
            if config.mode == "train" and config.job.image is None and name in IMAGE_CHANNELS:
                problem = _annotations_problem(bucket, source, _join(prefix, ANNOTATIONS))
                if problem:
                    issues.append(Issue(path, uri, problem))
        except ObjectUnreadable as e:
            issues.append(Issue(path, uri, f"spotline may not read {where} ({e})"))
    return issues


def _join(prefix: str, name: str) -> str:
    return f"{prefix.rstrip('/')}/{name}" if prefix else name


def _annotations_problem(bucket: DropBucket, source: str, key: str) -> str | None:
    where = f"s3://{source}/{key}"
    try:
        head, size = bucket.read_head(key, cap=FULL_CHECK_BYTES, bucket=source)
    except ObjectMissing:
        return f"{where} is missing: spotline's image reads the channel's COCO annotations from it"
    if size == 0:
        return f"{where} is empty: expected COCO annotations (images, annotations, categories)"
    if size > FULL_CHECK_BYTES:
        return _head_problem(where, head[:HEAD_BYTES])
    try:
        coco = json.loads(head.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as e:
        return f"{where} is not JSON ({e})"
    return _coco_problem(where, coco)


def _head_problem(where: str, head: bytes) -> str | None:
    text = head.decode("utf-8-sig", errors="replace").lstrip()
    if not text.startswith("{"):
        return f"{where} is not a JSON object (it starts {text[:20]!r})"
    if not any(f'"{k}"' in text for k in COCO_KEYS):
        return f"{where} does not start like COCO annotations (no {', '.join(COCO_KEYS)} near its start)"
    return None


def _coco_problem(where: str, coco: Any) -> str | None:
    if not isinstance(coco, Mapping):
        return f"{where} is not a JSON object of COCO annotations"
    missing = [k for k in COCO_KEYS if not isinstance(coco.get(k), list)]
    if missing:
        return f"{where} lacks the COCO list(s) {', '.join(missing)}"
    if not coco["images"]:
        return f"{where} lists no images"
    for image in coco["images"]:
        if not isinstance(image, Mapping) or not all(k in image for k in IMAGE_KEYS):
            return f"{where}: every image needs id, file_name, width and height"
    for category in coco["categories"]:
        if not isinstance(category, Mapping) or "id" not in category or "name" not in category:
            return f"{where}: every category needs an id and a name"
    return None
