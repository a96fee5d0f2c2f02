"""Which run, and which attempt of it, a training job is: its spotline tags first, its name last.

* ``spotline:run-id`` and ``spotline:attempt``: every job spotline creates, and one launched for it
  elsewhere (``spotline.notebook``) under spotline's own name;
* ``spotline:adopt=true``: a job launched elsewhere, named as its launcher chose (the SageMaker SDK
  appends a timestamp): attempt 1 of the run :func:`spotline.domain.naming.run_id_for_job` names;
* neither, but named ``<prefix>-<run id>-aNN``: spotline's name (an event that came without tags).

The name is never how an adopted job's run is found: a name of someone else's choosing says nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from spotline.domain.naming import MAX_ATTEMPT, job_name, parse_job_name, run_id_for_job
from spotline.domain.requests import TAG_ADOPT, TAG_ATTEMPT, TAG_RUN_ID


@dataclass(frozen=True)
class JobIdentity:
    run_id: str
    attempt: int
    adopted: bool = False  # tagged spotline:adopt: its run is built from the job on first sight


def _attempt(text: str | None) -> int | None:
    if text is None or not text.isdigit() or not 1 <= int(text) <= MAX_ATTEMPT:
        return None
    return int(text)


def _names_jobs(prefix: str, run_id: str) -> bool:
    """Whether ``run_id`` makes valid job names (a tag may hold anything)."""
    try:
        job_name(prefix, run_id, MAX_ATTEMPT)
    except ValueError:
        return False
    return bool(run_id)


def identify_job(prefix: str, name: str, tags: Mapping[str, str]) -> JobIdentity | None:
    """The run and attempt of job ``name`` with ``tags``; None for a job that is not spotline's."""
    run_id, attempt = tags.get(TAG_RUN_ID), _attempt(tags.get(TAG_ATTEMPT))
    if run_id is not None and attempt is not None and _names_jobs(prefix, run_id):
        return JobIdentity(run_id, attempt)
    if tags.get(TAG_ADOPT, "").strip().lower() == "true":
        return JobIdentity(run_id_for_job(name), 1, adopted=True)
    parsed = parse_job_name(prefix, name)
    return JobIdentity(*parsed) if parsed is not None else None
