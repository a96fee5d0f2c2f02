"""Deterministic names: a run id from the object that started it, job names from run id and attempt.

S3 and SageMaker deliver events more than once; deriving every name from the event's content
(never from a clock or a uuid) is what makes a redelivery land on the same run and job.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
JOB_PREFIX = re.compile(r"[a-z][a-z0-9]{0,11}")
_ATTEMPT_SUFFIX = re.compile(r"-a(\d{2})$")
MAX_ATTEMPT = 99
_SLUG_LEN = 24
_HASH_LEN = 12


def slugify(text: str, max_len: int = _SLUG_LEN) -> str:
    """Lowercase ASCII letters, digits and single dashes: 'Rail Défauts_v2' -> 'rail-defauts-v2'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_len].rstrip("-") or "run"


def run_id_for_object(bucket: str, key: str, version_or_etag: str, *, kind: str = "") -> str:
    """``<slug of the file stem>-<12 hex>``: the same object version always gives the same run id."""
    digest = hashlib.sha256("\x00".join((kind, bucket, key, version_or_etag)).encode()).hexdigest()
    stem = key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return f"{slugify(stem)}-{digest[:_HASH_LEN]}"


def run_id_for_job(job_name: str) -> str:
    """``<slug of the job name>-<12 hex>``: the run of a job spotline adopts (launched elsewhere, under
    a name of its launcher's choosing, timestamp suffix and all): the same job always gives the same run."""
    digest = hashlib.sha256(f"adopted\x00{job_name}".encode()).hexdigest()
    return f"{slugify(job_name)}-{digest[:_HASH_LEN]}"


def job_name(prefix: str, run_id: str, attempt: int) -> str:
    """``<prefix>-<run id>-aNN``; at most 63 characters and SageMaker's name pattern."""
    if not JOB_PREFIX.fullmatch(prefix):
        raise ValueError(f"job-name prefix {prefix!r} must match {JOB_PREFIX.pattern}")
    if not 1 <= attempt <= MAX_ATTEMPT:
        raise ValueError(f"attempt {attempt} outside 1..{MAX_ATTEMPT}")
    name = f"{prefix}-{run_id}-a{attempt:02d}"
    if len(name) > 63 or not JOB_NAME.fullmatch(name):
        raise ValueError(f"job name {name!r} breaks SageMaker's naming rules")
    return name


def parse_job_name(prefix: str, name: str) -> tuple[str, int] | None:
    """``(run_id, attempt)`` of a job spotline named, or None for anyone else's job."""
    if not name.startswith(prefix + "-"):
        return None
    match = _ATTEMPT_SUFFIX.search(name)
    if match is None:
        return None
    run_id = name[len(prefix) + 1 : match.start()]
    return (run_id, int(match.group(1))) if run_id else None
