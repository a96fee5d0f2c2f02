"""A config dropped under ``configs/`` becomes a Managed Spot training run — or a rejection.

The flow, for one S3 ``Object Created`` event:

1. derive the run id from (bucket, key, version or etag) and create the run in the ledger
   (conditional put) holding a launch lease; a duplicate event finds the run and stops;
2. read the object (size-capped) and validate the whole file with the one config schema, then
   check that its channels' data is there and readable (:mod:`spotline.training.data_check`);
3. bad file: write ``runs/<run-id>/rejection.json``, mark the run REJECTED, alert once, return
   normally (a retry cannot fix a user's file);
4. good file: snapshot it under ``runs/<run-id>/``, record attempt 1, create the training job
   (a name already taken means a previous invocation launched it), mark the run RUNNING; a config
   with a ``tuning:`` section becomes a tuning run instead (:mod:`spotline.tuning.launch`): its
   tuning job is created the same way, and SageMaker's tuner runs the trials.

Throttling is retried inside the client (adaptive mode); anything else that fails is raised so
that the event is retried and, in the end, lands in the function's dead-letter queue.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spotline.adapters.drop_bucket import ObjectMissing, ObjectTooLarge
from spotline.adapters.training_jobs import JobRequestRejected
from spotline.config import ConfigError, Issue, RunConfig, ValidationContext, parse_run_config
from spotline.domain import layout
from spotline.domain.events import ObjectCreated
from spotline.domain.naming import job_name, run_id_for_object
from spotline.domain.policy import RunPolicy
from spotline.domain.requests import training_request
from spotline.domain.states import RunKind, RunStatus
from spotline.domain.tuning_requests import tuning_request
from spotline.ledger.records import RunSource
from spotline.ledger.runs import TransitionRefused
from spotline.reports.links import console_url
from spotline.runs.first_attempt import FirstAttemptLauncher, LaunchInProgress, LaunchNotRecordable
from spotline.runs.publish import NOTICE_KIND
from spotline.training.data_check import data_issues
from spotline.tuning.launch import TuningStarter

logger = logging.getLogger(__name__)

IGNORED_KIND = "ignored"  # the SNS ``kind`` attribute of "this object was ignored" alerts

__all__ = ["LaunchInProgress", "LaunchOutcome", "TrainingLauncher"]


# rejection.json lists this many issues at most (and counts the rest), each field cut to a length:
# a file of thousands of bad values gets a report of bounded size, and an alert that fits.
MAX_REPORTED_ISSUES = 1_000
MAX_ISSUE_FIELD_CHARS = 500
# The run item, the logs and the function's answer keep the first few issues only.
MAX_SUMMARIZED_ISSUES = 20


def _cut(text: str) -> str:
    return text if len(text) <= MAX_ISSUE_FIELD_CHARS else text[: MAX_ISSUE_FIELD_CHARS - 3] + "..."


def issue_entry(issue: Issue) -> dict[str, str]:
    """One issue as rejection.json lists it: key, value, what was expected, the sentence."""
    return {
        "key": _cut(issue.path),
        "value": _cut(repr(issue.value)),
        "expected": _cut(issue.expected),
        "message": _cut(str(issue)),
    }


def issues_summary(issues: list[Issue]) -> list[str]:
    """The first issues as sentences, and how many more there are."""
    shown = [_cut(str(i)) for i in issues[:MAX_SUMMARIZED_ISSUES]]
    if len(issues) > len(shown):
        shown.append(f"... and {len(issues) - len(shown)} more (see rejection.json)")
    return shown


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

    prices: Mapping[str, float]
    tuning_starter: TuningStarter

    @property
    def context(self) -> ValidationContext:
        """What the deployment allows a config to name (its data buckets)."""
        return ValidationContext(
            drop_bucket=self.settings.bucket,
            extra_data_buckets=self.settings.extra_data_buckets,
            priced_instance_types=frozenset(self.prices),
            dropped_config=True,
            stack_image=self.settings.image_uri,
            allowed_images=self.settings.allowed_images,
        )

    def launch_from_object(self, obj: ObjectCreated) -> LaunchOutcome:
        if obj.bucket != self.settings.bucket:
            return self._ignored(obj, f"bucket {obj.bucket} is not the drop bucket")
        if not layout.is_config_key(obj.key):
            tell = layout.near_miss_reason(obj.key)
            return self._ignored(obj, "not a .yaml/.yml file under configs/", tell=tell)
        try:
            layout.check_user_key(obj.key, layout.CONFIGS)
        except layout.UnsafeKey as e:
            return self._ignored(obj, str(e), tell=f"{e}: spotline does not act on such keys")

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
                return LaunchOutcome("rejected", run_id, None, "; ".join(issues_summary(e.issues)))
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
        errors = [issue_entry(i) for i in issues[:MAX_REPORTED_ISSUES]]
        report = {
            "run_id": run_id,
            "status": RunStatus.REJECTED.value,
            "source": {"bucket": obj.bucket, "key": obj.key, "version": obj.version_or_etag},
            "errors_total": len(issues),
            "errors_not_shown": len(issues) - len(errors),
            "errors": errors,
        }
        report_key = layout.run_rejection_key(run_id)
        self.bucket.put_json(report_key, report)
        count = f"{len(issues)} problem{'s' if len(issues) != 1 else ''}"
        subject = f"spotline: {obj.key} rejected ({count})"
        alert_body = {
            **report,
            "report": self.bucket.uri(report_key),
            "report_console": console_url(self.bucket.name, report_key, self.settings.region),
        }
        self.notices.of_run(run_id).send_once(
            "rejected",
            lambda: self._alert(run_id, subject, alert_body, RunStatus.REJECTED),
            now=now,
        )
        # Settled only once the alert is out: a failed alert leaves the run PENDING for the retry.
        summary = issues_summary(issues)
        try:
            self.ledger.reject(run_id, errors=summary, report_key=report_key, now=now)
        except TransitionRefused:
            logger.info("run %s was already settled by another invocation", run_id)
        logger.warning("config %s rejected: %s", obj.key, "; ".join(summary))

    def _launch(self, run_id: str, obj: ObjectCreated, data: bytes, config: RunConfig) -> LaunchOutcome:
        if config.tuning is not None:
            return self._launch_tuning(run_id, obj, data, config)
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
            return self._refused_by_sagemaker(run_id, obj, e, policy=policy)
        logger.info("launched %s for %s", name, obj.key, extra={"run_id": run_id, "job_name": name})
        return LaunchOutcome("launched", run_id, name)

    def _launch_tuning(
        self, run_id: str, obj: ObjectCreated, data: bytes, config: RunConfig
    ) -> LaunchOutcome:
        """A tuning run: warm-start parents checked, then its one tuning job created (no quota wait:
        a refused tuning job fails the run with an alert, nothing having been paid for)."""
        parents, issues = self.tuning_starter.parents(config)
        if issues:
            self._reject(run_id, obj, issues)
            return LaunchOutcome("rejected", run_id, None, "; ".join(issues_summary(issues)))
        config_key = layout.run_config_key(run_id)
        self.bucket.put(config_key, data, "application/yaml")
        request = tuning_request(
            settings=self.settings,
            run_id=run_id,
            config=config,
            config_key=config_key,
            source_key=obj.key,
            parents=parents,
        )
        try:
            name = self.tuning_starter.start(
                run_id, request, policy=RunPolicy.from_config(config), config_key=config_key
            )
        except LaunchNotRecordable as e:
            issue = Issue("", str(e), "a value spotline can keep in its ledger (finite, within range)")
            self._reject(run_id, obj, [issue])
            return LaunchOutcome("rejected", run_id, None, str(issue))
        except JobRequestRejected as e:
            self._fail_refused(run_id, obj, e)
            return LaunchOutcome("rejected", run_id, None, str(e))
        logger.info(
            "tuning job %s started for %s", name, obj.key, extra={"run_id": run_id, "tuning_job": name}
        )
        return LaunchOutcome("launched", run_id, name)

    def _refused_by_sagemaker(
        self,
        run_id: str,
        obj: ObjectCreated,
        error: JobRequestRejected,
        *,
        policy: RunPolicy,
    ) -> LaunchOutcome:
        """SageMaker refused a request our schema accepted (an instance type the account lacks, a quota)."""
        if error.code == "ResourceLimitExceeded":
            self.wait_for_quota(run_id, policy, str(error))
            name = job_name(self.settings.job_prefix, run_id, 1)
            return LaunchOutcome("deferred", run_id, name, str(error))
        self._fail_refused(run_id, obj, error)
        return LaunchOutcome("rejected", run_id, None, str(error))

    def _fail_refused(self, run_id: str, obj: ObjectCreated, error: JobRequestRejected) -> None:
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

    def _alert(self, run_id: str, subject: str, body: dict[str, Any], status: RunStatus) -> None:
        self.notifier.publish(subject, body, {"kind": NOTICE_KIND, "status": status.value, "run_id": run_id})

    def _ignored(self, obj: ObjectCreated, reason: str, *, tell: str | None = None) -> LaunchOutcome:
        """Start nothing; when the key looks meant for configs/ (``tell``), say so in one alert."""
        logger.info("ignored %s: %s", obj.key, tell or reason)
        if tell is not None:
            body = {
                "ignored": self.bucket.uri(obj.key) if obj.bucket == self.settings.bucket else obj.key,
                "version": obj.version_or_etag,
                "reason": tell,
            }
            self.notices.of_ignored_object(obj.bucket, obj.key, obj.version_or_etag).send_once(
                "ignored",
                lambda: self.notifier.publish(
                    f"spotline: ignored {obj.key.rsplit('/', 1)[-1]} ({obj.key})",
                    body,
                    {"kind": IGNORED_KIND, "status": "IGNORED"},
                ),
                now=self.clock(),
            )
        return LaunchOutcome("ignored", None, None, tell or reason)
