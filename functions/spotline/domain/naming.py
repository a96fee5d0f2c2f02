"""Deterministic names: a run id from the object that started it, job names from run id and attempt.

S3 and SageMaker deliver events more than once; deriving every name from the event's content
(never from a clock or a uuid) is what makes a redelivery land on the same run and job.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
# CreateHyperParameterTuningJob's HyperParameterTuningJobName (botocore's API model).
TUNING_JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}")
MAX_TUNING_JOB_NAME = 32
_TUNING_HASH_LEN = 8
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


def tuning_job_name(prefix: str, run_id: str, tuning_job: int = 1) -> str:
    """``<prefix>-<start of the run id>-<8 hex>``: at most 32 characters, the same for the same run.

    ``tuning_job`` 1 is the run's tuning job, 2 its warm-started follow-up. The tuner names its
    trials ``<this name>-<NNN>-<8 hex>`` (at most 45 characters, under the 63 of a job name).
    """
    if not JOB_PREFIX.fullmatch(prefix):
        raise ValueError(f"job-name prefix {prefix!r} must match {JOB_PREFIX.pattern}")
    digest = hashlib.sha256(f"{run_id}\x00tuning\x00{tuning_job}".encode()).hexdigest()[:_TUNING_HASH_LEN]
    room = MAX_TUNING_JOB_NAME - len(prefix) - len(digest) - 2
    stem = slugify(run_id.rsplit("-", 1)[0], room)
    name = f"{prefix}-{stem}-{digest}"
    if len(name) > MAX_TUNING_JOB_NAME or not TUNING_JOB_NAME.fullmatch(name):
        raise ValueError(f"tuning job name {name!r} breaks SageMaker's naming rules")
    return name


def name_from_arn(arn: str) -> str:
    """The resource name at the end of a SageMaker ARN (``...:hyper-parameter-tuning-job/<name>``)."""
    return arn.rsplit("/", 1)[-1]
