"""A config dropped under ``configs/`` becomes a Managed Spot training run — or a rejection.

The flow, for one S3 ``Object Created`` event:

1. derive the run id from (bucket, key, version or etag) and create the run in the ledger
   (conditional put) holding a launch lease; a duplicate event finds the run and stops;
2. read the object (size-capped) and validate the whole file with the one config schema, then
   check that its channels' data is there and readable (:mod:`spotline.training.data_check`);
3. bad file: write ``runs/<run-id>/rejection.json``, mark the run REJECTED, alert once, return
   normally (a retry cannot fix a user's file);
4. good file: snapshot it under ``runs/<run-id>/``, record attempt 1, create the training job
   (a name already taken means a previous invocation launched it), mark the run RUNNING.

Throttling is retried inside the client (adaptive mode); anything else that fails is raised so
that the event is retried and, in the end, lands in the function's dead-letter queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from spotline.adapters.drop_bucket import ObjectMissing, ObjectTooLarge
from spotline.adapters.relaunch_queue import RelaunchQueue
from spotline.adapters.training_jobs import JobRequestRejected
from spotline.config import ConfigError, Issue, RunConfig, ValidationContext, parse_run_config
from spotline.domain import layout
from spotline.domain.events import ObjectCreated
from spotline.domain.naming import job_name, run_id_for_object
from spotline.domain.policy import RunPolicy
from spotline.domain.requests import training_request
from spotline.domain.retry import quota_backoff_s
from spotline.domain.states import RunKind, RunStatus
from spotline.ledger.records import NextAttempt, RunSource
from spotline.ledger.runs import TransitionRefused
from spotline.runs.first_attempt import FirstAttemptLauncher, LaunchInProgress, LaunchNotRecordable
from spotline.runs.publish import NOTICE_KIND
from spotline.training.data_check import data_issues

logger = logging.getLogger(__name__)

__all__ = ["LaunchInProgress", "LaunchOutcome", "TrainingLauncher"]


@dataclass(frozen=True)
class LaunchOutcome:
    """What one event did: ``launched``, ``deferred`` (quota), ``duplicate``, ``rejected`` or ``ignored``."""

    action: str
    run_id: str | None = None
    job_name: str | None = None
    reason: str = ""


@dataclass(kw_only=True)
class TrainingLauncher(FirstAttemptLauncher):
    """Turns config objects into training runs."""

    relaunch_queue: RelaunchQueue

    @property
    def context(self) -> ValidationContext:
        """What the deployment allows a config to name (its data buckets)."""
        return ValidationContext(
            drop_bucket=self.settings.bucket, extra_data_buckets=self.settings.extra_data_buckets
        )

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
        source = RunSource(obj.bucket, obj.key, obj.version_or_etag)
        if not self.claim(run_id, kind=RunKind.TRAINING, source=source):
            logger.info("duplicate event for run %s", run_id, extra={"run_id": run_id, "key": obj.key})
            return LaunchOutcome("duplicate", run_id, job_name(self.settings.job_prefix, run_id, 1))
        try:
            try:
                data = self._read_config(obj)
                config = parse_run_config(data, self.context, max_bytes=self.settings.max_config_bytes)
                missing = data_issues(self.bucket, config)  # before anything is paid for
                if missing:
                    raise ConfigError(missing)
            except ConfigError as e:
                self._reject(run_id, obj, e.issues)
                return LaunchOutcome("rejected", run_id, None, "; ".join(str(i) for i in e.issues))
            return self._launch(run_id, obj, data, config)
        except Exception:
            self.release(run_id)
            raise

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
        try:
            return self.bucket.read(obj.key, cap=cap, version_id=obj.version_id, bucket=obj.bucket)
        except ObjectMissing as e:
            raise ConfigError([Issue("", obj.key, "the file was deleted before it could be read")]) from e
        except ObjectTooLarge as e:
            raise ConfigError([too_big]) from e

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
        alert_body = {**report, "report": self.bucket.uri(report_key)}
        self.notices.of_run(run_id).send_once(
            "rejected",
            lambda: self._alert(run_id, subject, alert_body, RunStatus.REJECTED),
            now=now,
        )
        # Settled only once the alert is out: a failed alert leaves the run PENDING for the retry.
        try:
            self.ledger.reject(run_id, errors=[e["message"] for e in errors], report_key=report_key, now=now)
        except TransitionRefused:
            logger.info("run %s was already settled by another invocation", run_id)
        logger.warning("config %s rejected: %s", obj.key, "; ".join(e["message"] for e in errors))

    def _launch(self, run_id: str, obj: ObjectCreated, data: bytes, config: RunConfig) -> LaunchOutcome:
        config_key = layout.run_config_key(run_id)
        self.bucket.put(config_key, data, "application/yaml")
        request = training_request(
            settings=self.settings, run_id=run_id, config=config, config_key=config_key, source_key=obj.key
        )
        policy = RunPolicy.from_config(config)
        try:
            name = self.start(run_id, request, policy=policy, config_key=config_key)
        except LaunchNotRecordable as e:  # refused before any job was created
            issue = Issue("", str(e), "a value spotline can keep in its ledger (finite, within range)")
            self._reject(run_id, obj, [issue])
            return LaunchOutcome("rejected", run_id, None, str(issue))
        except JobRequestRejected as e:
            return self._refused_by_sagemaker(run_id, obj, e, policy=policy, config=config)
        logger.info("launched %s for %s", name, obj.key, extra={"run_id": run_id, "job_name": name})
        return LaunchOutcome("launched", run_id, name)

    def _refused_by_sagemaker(
        self,
        run_id: str,
        obj: ObjectCreated,
        error: JobRequestRejected,
        *,
        policy: RunPolicy,
        config: RunConfig,
    ) -> LaunchOutcome:
        """SageMaker refused a request our schema accepted (an instance type the account lacks, a quota)."""
        if error.code == "ResourceLimitExceeded":
            return self._wait_for_quota(run_id, policy, config, str(error))
        self.fail(
            run_id,
            str(error),
            lambda: self._alert(
                run_id,
                f"spotline: {obj.key} could not start",
                {"run_id": run_id, "source_key": obj.key, "reason": str(error)},
                RunStatus.FAILED,
            ),
        )
        return LaunchOutcome("rejected", run_id, None, str(error))

    def _wait_for_quota(
        self, run_id: str, policy: RunPolicy, config: RunConfig, reason: str
    ) -> LaunchOutcome:
        """An account quota refused the first job: the run waits on the relaunch queue like any retry.

        Quotas free up over minutes to hours, longer than the event's own retries last.
        """
        now = self.clock()
        not_before = now + quota_backoff_s(policy, 0, run_id=run_id, attempt=1)
        self.ledger.mark_retrying(
            run_id,
            NextAttempt(
                attempt=1,
                instance_type=config.job.instance_type,
                spot=config.job.spot,
                not_before=int(not_before),
                reason=reason,
            ),
            now=now,
            expected=RunStatus.PENDING,
            create_quota_hits=1,
        )
        self.relaunch_queue.send(run_id, 1, not_before=not_before, now=now)
        logger.warning("quota reached for run %s: first attempt deferred", run_id, extra={"reason": reason})
        return LaunchOutcome("deferred", run_id, job_name(self.settings.job_prefix, run_id, 1), reason)

    def _alert(self, run_id: str, subject: str, body: dict[str, Any], status: RunStatus) -> None:
        self.notifier.publish(subject, body, {"kind": NOTICE_KIND, "status": status.value, "run_id": run_id})

    @staticmethod
    def _ignored(obj: ObjectCreated, reason: str) -> LaunchOutcome:
        logger.info("ignored %s: %s", obj.key, reason)
        return LaunchOutcome("ignored", None, None, reason)
