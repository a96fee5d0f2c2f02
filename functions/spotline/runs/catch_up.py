"""Catching the ledger up with a job that exists: from the job's own description, tags and config.

A job that CreateTrainingJob accepted is paid for, so it is watched to its end even when the
ledger is behind it:

* the launch died between ``CreateTrainingJob`` and its last ledger writes: the run is PENDING
  (what the job was created with — policy and first request — was recorded *before* the create);
* a relaunch died between ``CreateTrainingJob`` and marking the run RUNNING: the run is RETRYING
  and waits for exactly this attempt;
* the ledger does not know the run at all: the run is built from ``DescribeTrainingJob``, the
  job's ``spotline:*`` tags (:mod:`spotline.domain.requests`) and its config snapshot
  ``runs/<run id>/config.yaml`` — or, without a readable snapshot, from the job alone with the
  schema's default recovery policy;
* a job launched outside spotline that asks to be adopted (``spotline:adopt=true``; the SageMaker
  SDK, boto3): the same, as attempt 1 of the run its name derives; a ``spotline:config`` tag names
  its config under ``adopt/`` in the drop bucket, which becomes the run's snapshot. From then on
  the run is recovered, settled, reported and alerted like any other.

:func:`run_from_job` is the one place a run is built from a job. A trial of a hyperparameter
tuning job is never made a run of its own: its tuning job launched it and follows it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any

from spotline.adapters.drop_bucket import DropBucket, ObjectMissing, ObjectTooLarge
from spotline.adapters.training_jobs import TrainingJobs
from spotline.config import ConfigError, RunConfig, ValidationContext, parse_run_config
from spotline.config.job import JobSection
from spotline.config.schema import Duration
from spotline.domain import layout
from spotline.domain.events import parse_timestamp
from spotline.domain.naming import job_name, run_id_for_job
from spotline.domain.policy import RunPolicy
from spotline.domain.requests import (
    TAG_ADOPT,
    TAG_ATTEMPT,
    TAG_CONFIG,
    TAG_KIND,
    TAG_RUN_ID,
    TAG_SOURCE_KEY,
    TRAINING_REQUEST_FIELDS,
    tag_value,
)
from spotline.domain.settings import Settings
from spotline.domain.states import TERMINAL_RUN_STATES, AttemptStatus, RunKind, RunStatus
from spotline.domain.timefmt import iso_utc
from spotline.ledger.records import Attempt, Run, RunSource
from spotline.ledger.runs import AttemptExists, RunLedger, TransitionRefused

logger = logging.getLogger(__name__)

UNKNOWN_VERSION = "unknown"


class NotCatchable(Exception):
    """The job cannot be tied to a run (another run's tags, or a kind spotline cannot rebuild)."""


@dataclass(frozen=True)
class JobOrigin:
    """What a job says about the run it belongs to."""

    run_id: str
    attempt: int
    kind: RunKind
    source_key: str
    describe: Mapping[str, Any]
    tags: Mapping[str, str]

    @property
    def job_name(self) -> str:
        return str(self.describe.get("TrainingJobName") or "")

    @property
    def adopted(self) -> bool:
        """Launched elsewhere, tagged to be adopted (and not yet given a run id of spotline's)."""
        return (
            TAG_RUN_ID not in self.tags
            and self.tags.get(TAG_ADOPT, "").strip().lower() == "true"
            and self.run_id == run_id_for_job(self.job_name)
        )

    @property
    def spotline_job(self) -> bool:
        """Tagged as a job of this very run: spotline's own, or one that asks to be adopted."""
        return self.tags.get(TAG_RUN_ID) == self.run_id or self.adopted


# The tags that ask for adoption: a relaunched attempt carries the run's id instead.
_ADOPTION_TAGS = (TAG_ADOPT, TAG_CONFIG)


def request_from_job(origin: JobOrigin, job_prefix: str) -> dict[str, Any]:
    """Attempt 1's CreateTrainingJob request, as DescribeTrainingJob and the tags give it back."""
    request = {
        k: copy.deepcopy(origin.describe[k]) for k in TRAINING_REQUEST_FIELDS if origin.describe.get(k)
    }
    request["TrainingJobName"] = job_name(job_prefix, origin.run_id, 1)
    tags = {k: v for k, v in origin.tags.items() if not k.startswith("aws:") and k not in _ADOPTION_TAGS}
    tags.update(
        {
            TAG_RUN_ID: origin.run_id,
            TAG_ATTEMPT: "1",
            TAG_KIND: origin.kind.value,
            TAG_SOURCE_KEY: tag_value(origin.source_key),
        }
    )
    request["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    environment = request.setdefault("Environment", {})
    environment.setdefault("SPOTLINE_RUN_ID", origin.run_id)
    return request


def policy_from_job(describe: Mapping[str, Any]) -> RunPolicy:
    """The schema's default recovery policy on the job's own instance type, count and Spot setting;
    it resumes if the job has a CheckpointConfig (every attempt then shares its S3 URI)."""
    resources = describe.get("ResourceConfig") or {}
    stopping = describe.get("StoppingCondition") or {}
    spot = bool(describe.get("EnableManagedSpotTraining"))
    max_wait = stopping.get("MaxWaitTimeInSeconds") if spot else None
    job = JobSection(
        instance_type=str(resources.get("InstanceType") or JobSection.instance_type),
        instance_count=int(resources.get("InstanceCount") or 1),
        spot=spot,
        max_runtime=Duration(int(stopping.get("MaxRuntimeInSeconds") or JobSection.max_runtime)),
        max_wait=Duration(int(max_wait)) if max_wait else None,
        channels={"train": ""},
    )
    policy = RunPolicy.from_config(RunConfig(job=job))
    return dataclasses.replace(policy, resumes=bool((describe.get("CheckpointConfig") or {}).get("S3Uri")))


def run_from_job(origin: JobOrigin, *, settings: Settings, config: RunConfig | None) -> Run:
    """The run a job belongs to, as the ledger would hold it had its launch been recorded: PENDING,
    with its policy (from ``config``, else :func:`policy_from_job`) and attempt 1's request."""
    created = parse_timestamp(origin.describe.get("CreationTime"))
    created_at = iso_utc(created.timestamp()) if created else iso_utc(time.time())
    return Run(
        run_id=origin.run_id,
        kind=origin.kind,
        status=RunStatus.PENDING,
        source=RunSource(settings.bucket, origin.source_key, UNKNOWN_VERSION),
        created_at=created_at,
        updated_at=created_at,
        config_key=layout.run_config_key(origin.run_id) if config is not None else None,
        policy=RunPolicy.from_config(config) if config is not None else policy_from_job(origin.describe),
        first_request=request_from_job(origin, settings.job_prefix),
    )


@dataclass
class RunCatchUp:
    """Brings the ledger level with a job whose state-change event arrived ahead of it."""

    settings: Settings
    _: KW_ONLY
    ledger: RunLedger
    jobs: TrainingJobs
    bucket: DropBucket
    clock: Callable[[], float] = time.time

    def origin(
        self, run_id: str, attempt: int, describe: Mapping[str, Any], event_tags: Mapping[str, str]
    ) -> JobOrigin:
        """The job's account of itself; :class:`NotCatchable` if its tags name another run, or if it
        is a tuning run's trial (it carries its tuning job's tags; the tuning flow records it)."""
        if describe.get("TuningJobArn"):
            raise NotCatchable(f"a trial of tuning job {describe['TuningJobArn']}: its tuning run records it")
        tags = dict(event_tags)
        if TAG_RUN_ID not in tags and describe.get("TrainingJobArn"):
            tags = {**tags, **self.jobs.tags(str(describe["TrainingJobArn"]))}
        if describe.get("TuningJobArn"):
            raise NotCatchable(f"a trial of {describe['TuningJobArn']}: its tuning job follows it")
        tagged = tags.get(TAG_RUN_ID)
        if tagged is not None and tagged != run_id:
            raise NotCatchable(f"the job's {TAG_RUN_ID} tag names run {tagged!r}, its name {run_id!r}")
        try:
            kind = RunKind(tags.get(TAG_KIND) or RunKind.TRAINING.value)
        except ValueError as e:
            raise NotCatchable(f"the job's {TAG_KIND} tag is {tags.get(TAG_KIND)!r}") from e
        source_key = (
            tags.get(TAG_SOURCE_KEY) or tags.get(TAG_CONFIG) or str(describe.get("TrainingJobName") or "")
        )
        return JobOrigin(run_id, attempt, kind, source_key, describe, tags)

    def catch_up(self, run: Run | None, origin: JobOrigin) -> Run:
        """The run, RUNNING at the job's attempt if it was behind it (or left as it is if settled)."""
        if run is None:
            run = self._record_unknown_run(origin)
        if run.status in TERMINAL_RUN_STATES:
            self._record_attempt(origin)  # a job started as the run was settled: counted, not resumed
            return run
        if run.status == RunStatus.PENDING:
            if not run.launch_recorded:
                run = self._record_launch(run, origin)
            return self._running(run, origin, expected=RunStatus.PENDING, at=None)
        if run.status == RunStatus.RETRYING and run.next is not None and run.next.attempt == origin.attempt:
            return self._running(run, origin, expected=RunStatus.RETRYING, at=run.attempt)
        return run

    def _record_unknown_run(self, origin: JobOrigin) -> Run:
        if not origin.spotline_job:
            # Named like spotline's but not tagged as one: relaunching it would spend someone's money.
            raise NotCatchable(
                f"a job without its run and without a {TAG_RUN_ID} or {TAG_ADOPT}=true tag is not spotline's"
            )
        if origin.kind != RunKind.TRAINING:
            # An inference part's run is created before its job, with the part it belongs to.
            raise NotCatchable(f"an {origin.kind} job without its run: its batch part is unknown")
        run = run_from_job(origin, settings=self.settings, config=self._snapshot(origin))
        logger.warning(
            "job %s has no run in the ledger: %s from the job itself",
            origin.job_name,
            "adopted" if origin.adopted else "rebuilt",
            extra={"run_id": origin.run_id, "from_snapshot": run.config_key is not None},
        )
        now = self.clock()
        created = self.ledger.create_run(
            run.run_id, kind=run.kind, source=run.source, now=now, lease_seconds=0
        )
        current = created or self.ledger.get_run(run.run_id)
        if current is None:  # pragma: no cover - a run item is never deleted
            raise NotCatchable(f"run {run.run_id} vanished while it was being caught up")
        if current.status == RunStatus.PENDING and not current.launch_recorded:
            with contextlib.suppress(TransitionRefused):
                current = self._store_launch(run.run_id, run, now)
        return current

    def _record_launch(self, run: Run, origin: JobOrigin) -> Run:
        rebuilt = run_from_job(origin, settings=self.settings, config=self._snapshot(origin))
        try:
            return self._store_launch(run.run_id, rebuilt, self.clock())
        except TransitionRefused:
            return self.ledger.get_run(run.run_id) or run

    def _store_launch(self, run_id: str, rebuilt: Run, now: float) -> Run:
        if rebuilt.policy is None or rebuilt.first_request is None:  # pragma: no cover - built with both
            raise NotCatchable(f"run {run_id}: nothing to record its launch with")
        return self.ledger.record_launch(
            run_id,
            policy=rebuilt.policy,
            first_request=rebuilt.first_request,
            config_key=rebuilt.config_key,
            now=now,
        )

    def _snapshot(self, origin: JobOrigin) -> RunConfig | None:
        """The run's config snapshot, validated (None if it is missing or no longer valid).

        An adopted job's ``spotline:config`` (a key under ``adopt/``) becomes its snapshot."""
        run_id = origin.run_id
        key = layout.run_config_key(run_id)
        adopted_from = origin.tags.get(TAG_CONFIG) if origin.adopted else None
        try:
            if adopted_from is not None:
                try:
                    data = self.bucket.read(key, cap=self.settings.max_config_bytes)
                except ObjectMissing:
                    data = self._adoption_config(adopted_from)
                    self.bucket.put(key, data, "application/yaml")
            else:
                data = self.bucket.read(key, cap=self.settings.max_config_bytes)
            return parse_run_config(
                data,
                ValidationContext(
                    drop_bucket=self.settings.bucket, extra_data_buckets=self.settings.extra_data_buckets
                ),
                max_bytes=self.settings.max_config_bytes,
            )
        except (ObjectMissing, ObjectTooLarge, ConfigError, layout.UnsafeKey) as e:
            logger.warning("no usable config snapshot %s: %s", key, e, extra={"run_id": run_id})
            return None

    def _adoption_config(self, key: str) -> bytes:
        """The config an adopted job names: a plain key under ``adopt/`` of the drop bucket."""
        layout.check_user_key(key, layout.ADOPT)
        return self.bucket.read(key, cap=self.settings.max_config_bytes)

    def _record_attempt(self, origin: JobOrigin) -> None:
        resources = origin.describe.get("ResourceConfig") or {}
        attempt = Attempt(
            run_id=origin.run_id,
            attempt=origin.attempt,
            job_name=str(origin.describe.get("TrainingJobName") or ""),
            instance_type=str(resources.get("InstanceType") or ""),
            spot=bool(origin.describe.get("EnableManagedSpotTraining")),
            status=AttemptStatus.LAUNCHING,
        )
        with contextlib.suppress(AttemptExists):
            self.ledger.record_attempt(attempt)
        self.ledger.attempt_launched(origin.run_id, origin.attempt, now=self.clock())

    def _running(self, run: Run, origin: JobOrigin, *, expected: RunStatus, at: int | None) -> Run:
        self._record_attempt(origin)
        logger.warning(
            "run %s caught up: %s -> RUNNING at attempt %d (its job exists)",
            run.run_id,
            run.status,
            origin.attempt,
            extra={"run_id": run.run_id},
        )
        try:
            return self.ledger.mark_running(
                run.run_id, attempt=origin.attempt, now=self.clock(), expected=expected, expected_attempt=at
            )
        except TransitionRefused:
            return self.ledger.get_run(run.run_id) or run
