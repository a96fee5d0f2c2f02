"""A config dropped under ``configs/`` becomes a Managed Spot training run — or a rejection.

The flow, for one S3 ``Object Created`` event:

1. derive the run id from (bucket, key, version or etag) and create the run in the ledger
   (conditional put) holding a launch lease; a duplicate event finds the run and stops;
2. read the object (size-capped) and validate the whole file with the one config schema;
3. bad file: write ``runs/<run-id>/rejection.json``, mark the run REJECTED, alert once, return
   normally (a retry cannot fix a user's file);
4. good file: snapshot it under ``runs/<run-id>/``, record attempt 1, create the training job
   (a name already taken means a previous invocation launched it), mark the run RUNNING.

Throttling is retried inside the client (adaptive mode); anything else that fails is raised so
that the event is retried and, in the end, lands in the function's dead-letter queue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spotline import aws, layout
from spotline.config import ConfigError, Issue, RunConfig, ValidationContext, parse_run_config
from spotline.drop_bucket import DropBucket
from spotline.events import ObjectCreated
from spotline.first_attempt import fail_first_attempt, start_first_attempt
from spotline.jobspec import training_request
from spotline.ledger import RunLedger, RunSource, TransitionRefused
from spotline.naming import job_name, run_id_for_object
from spotline.notify import Notifier
from spotline.policy import RunPolicy
from spotline.relaunch import RelaunchQueue
from spotline.retry import quota_backoff_s
from spotline.settings import Settings
from spotline.states import RunStatus
from spotline.training_jobs import JobRequestRejected, TrainingJobs

logger = logging.getLogger(__name__)

# Longer than the function's timeout: a lease still held means its holder may still be working.
LAUNCH_LEASE_SECONDS = 300


class LaunchInProgress(Exception):
    """Another invocation holds this run's launch lease and its job does not exist yet: retry later."""


@dataclass(frozen=True)
class LaunchOutcome:
    """What one event did: ``launched``, ``deferred`` (quota), ``duplicate``, ``rejected`` or ``ignored``."""

    action: str
    run_id: str | None = None
    job_name: str | None = None
    reason: str = ""


class Launcher:
    """Turns config objects into training runs. Collaborators are injected; defaults are lazy."""

    def __init__(
        self,
        settings: Settings,
        *,
        ledger: RunLedger,
        jobs: TrainingJobs,
        notifier: Notifier,
        relaunch_queue: RelaunchQueue | None = None,
        s3: Any | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.jobs = jobs
        self.notifier = notifier
        self.relaunch_queue = relaunch_queue or RelaunchQueue(settings.relaunch_queue_url)
        self.bucket = DropBucket(settings, s3)
        self.clock = clock
        self.context = ValidationContext(
            drop_bucket=settings.bucket, extra_data_buckets=settings.extra_data_buckets
        )

    @property
    def s3(self) -> Any:
        return self.bucket.s3

    def launch_from_object(self, obj: ObjectCreated) -> LaunchOutcome:
        if obj.bucket != self.settings.bucket:
            return self._ignored(obj, f"bucket {obj.bucket} is not the drop bucket")
        if not layout.is_config_key(obj.key):
            return self._ignored(obj, "not a .yaml/.yml file under configs/")
        try:
            layout.check_user_key(obj.key, layout.CONFIGS)
        except layout.UnsafeKey as e:
            return self._ignored(obj, str(e))

        run_id = run_id_for_object(obj.bucket, obj.key, obj.version_or_etag)
        first_job = job_name(self.settings.job_prefix, run_id, 1)
        now = self.clock()
        source = RunSource(obj.bucket, obj.key, obj.version_or_etag)
        created = self.ledger.create_run(
            run_id, kind="training", source=source, now=now, lease_seconds=LAUNCH_LEASE_SECONDS
        )
        if created is None and not self._resume_unfinished_launch(run_id, first_job, now):
            logger.info("duplicate event for run %s", run_id, extra={"run_id": run_id, "key": obj.key})
            return LaunchOutcome("duplicate", run_id, first_job)

        try:
            try:
                data = self._read_config(obj)
                config = parse_run_config(data, self.context, max_bytes=self.settings.max_config_bytes)
            except ConfigError as e:
                self._reject(run_id, obj, e.issues)
                return LaunchOutcome("rejected", run_id, None, "; ".join(str(i) for i in e.issues))
            return self._launch(run_id, obj, data, config)
        except Exception:
            self.ledger.release_launch(run_id, now=self.clock())
            raise

    def _resume_unfinished_launch(self, run_id: str, first_job: str, now: float) -> bool:
        """For a run that already exists: True if this invocation must (re)do its launch."""
        run = self.ledger.get_run(run_id)
        if run is None or run["status"] != RunStatus.PENDING:
            return False
        lease_until = int(run["lease_until"])
        if lease_until > now:
            if self.jobs.exists(first_job):
                return False
            raise LaunchInProgress(f"run {run_id} is being launched by another invocation")
        if not self.ledger.take_over_launch(
            run_id, seen_lease_until=lease_until, now=now, lease_seconds=LAUNCH_LEASE_SECONDS
        ):
            raise LaunchInProgress(f"run {run_id}: another invocation took the launch over")
        logger.warning("taking over the unfinished launch of run %s", run_id, extra={"run_id": run_id})
        return True

    def _read_config(self, obj: ObjectCreated) -> bytes:
        """The object's bytes, never more than the cap (a larger file is a user error)."""
        cap = self.settings.max_config_bytes
        too_big = Issue("", f"{obj.size} bytes", f"a config file must be at most {cap} bytes")
        if obj.size > cap:
            raise ConfigError([too_big])
        if obj.size == 0:
            raise ConfigError(
                [Issue("", "an empty file", "expected a YAML mapping with at least a 'job' section")]
            )
        request: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
        if obj.version_id:
            request["VersionId"] = obj.version_id
        from botocore.exceptions import ClientError

        try:
            response = self.s3.get_object(**request)
        except ClientError as e:
            if aws.error_code(e) in ("NoSuchKey", "NoSuchVersion"):
                raise ConfigError([Issue("", obj.key, "the file was deleted before it could be read")]) from e
            raise
        body = response["Body"]
        try:
            data: bytes = body.read(cap + 1)
        finally:
            body.close()
        if len(data) > cap:
            raise ConfigError([too_big])
        return data

    def _reject(self, run_id: str, obj: ObjectCreated, issues: list[Issue]) -> None:
        now = self.clock()
        errors = [
            {"key": i.path, "value": repr(i.value), "expected": i.expected, "message": str(i)} for i in issues
        ]
        report = {
            "run_id": run_id,
            "status": RunStatus.REJECTED.value,
            "source": {"bucket": obj.bucket, "key": obj.key, "version": obj.version_or_etag},
            "errors": errors,
        }
        report_key = layout.run_rejection_key(run_id)
        self.bucket.put_json(report_key, report)
        count = f"{len(issues)} problem{'s' if len(issues) != 1 else ''}"
        subject = f"spotline: {obj.key} rejected ({count})"
        alert_body = {**report, "report": f"s3://{self.settings.bucket}/{report_key}"}
        self.ledger.send_notice_once(
            run_id, "rejected", now, lambda: self._alert(run_id, subject, alert_body, RunStatus.REJECTED)
        )
        # Settled only once the alert is out: a failed alert leaves the run PENDING for the retry.
        try:
            self.ledger.transition(
                run_id,
                RunStatus.REJECTED,
                now=now,
                expected=[RunStatus.PENDING],
                attrs={"errors": [e["message"] for e in errors], "report_key": report_key},
            )
        except TransitionRefused:
            logger.info("run %s was already settled by another invocation", run_id)
        logger.warning("config %s rejected: %s", obj.key, "; ".join(e["message"] for e in errors))

    def _launch(self, run_id: str, obj: ObjectCreated, data: bytes, config: RunConfig) -> LaunchOutcome:
        config_key = layout.run_config_key(run_id)
        self.bucket.put(config_key, data, "application/yaml")
        request = training_request(
            settings=self.settings, run_id=run_id, config=config, config_key=config_key, source_key=obj.key
        )
        try:
            name = start_first_attempt(
                ledger=self.ledger,
                jobs=self.jobs,
                run_id=run_id,
                request=request,
                policy=RunPolicy.from_config(config),
                config_key=config_key,
                clock=self.clock,
            )
        except JobRequestRejected as e:
            return self._refused_by_sagemaker(
                run_id, obj, e, config=config, request=request, config_key=config_key
            )
        logger.info("launched %s for %s", name, obj.key, extra={"run_id": run_id, "job_name": name})
        return LaunchOutcome("launched", run_id, name)

    def _refused_by_sagemaker(
        self,
        run_id: str,
        obj: ObjectCreated,
        error: JobRequestRejected,
        *,
        config: RunConfig,
        request: dict[str, Any],
        config_key: str,
    ) -> LaunchOutcome:
        """SageMaker refused a request our schema accepted (an instance type the account lacks, a quota)."""
        if error.code == "ResourceLimitExceeded":
            return self._wait_for_quota(run_id, config, request, config_key, str(error))
        fail_first_attempt(
            ledger=self.ledger,
            run_id=run_id,
            reason=str(error),
            now=self.clock(),
            alert=lambda: self._alert(
                run_id,
                f"spotline: {obj.key} could not start",
                {"run_id": run_id, "source_key": obj.key, "reason": str(error)},
                RunStatus.FAILED,
            ),
        )
        return LaunchOutcome("rejected", run_id, None, str(error))

    def _wait_for_quota(
        self, run_id: str, config: RunConfig, request: dict[str, Any], config_key: str, reason: str
    ) -> LaunchOutcome:
        """An account quota refused the first job: the run waits on the relaunch queue like any retry.

        Quotas free up over minutes to hours, longer than the event's own retries last.
        """
        policy = RunPolicy.from_config(config)
        now = self.clock()
        not_before = now + quota_backoff_s(policy, 0, run_id=run_id, attempt=1)
        self.ledger.transition(
            run_id,
            RunStatus.RETRYING,
            now=now,
            expected=[RunStatus.PENDING],
            attrs={
                "config_key": config_key,
                "policy": policy.to_item(),
                "first_request": request,
                "next_attempt": 1,
                "next_instance_type": config.job.instance_type,
                "next_spot": config.job.spot,
                "create_quota_hits": 1,
                "not_before": int(not_before),
                "last_reason": reason,
            },
        )
        self.relaunch_queue.send(run_id, 1, not_before=not_before, now=now)
        logger.warning("quota reached for run %s: first attempt deferred", run_id, extra={"reason": reason})
        return LaunchOutcome("deferred", run_id, str(request["TrainingJobName"]), reason)

    def _alert(self, run_id: str, subject: str, body: dict[str, Any], status: RunStatus) -> None:
        self.notifier.publish(subject, body, {"kind": "run", "status": status.value, "run_id": run_id})

    @staticmethod
    def _ignored(obj: ObjectCreated, reason: str) -> LaunchOutcome:
        logger.info("ignored %s: %s", obj.key, reason)
        return LaunchOutcome("ignored", None, None, reason)
