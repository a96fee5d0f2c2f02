"""A closed batch becomes Spot inference jobs run through the Training API.

Each part of a close gets a manifest of exactly its images (SageMaker ``ManifestFile``: a JSON
array, ``{"prefix": "s3://bucket/inference/<batch>/"}`` then relative keys) under
``runs/<run-id>/``, a run in the ledger (kind ``inference``, with the same ``policy`` and
``first_request`` a training run has, so the job-state function's ladder relaunches it) and one
CreateTrainingJob: Spot, ``mode=inference``, channels ``model`` and ``images``, the run's checkpoint
URI (finished shards survive an interruption). Run ids derive from (bucket, batch, generation,
part), job names from the run id, so every step is safe to repeat.

The model is the one named in an optional ``inference/<batch>/_job.yaml``, else the promoted one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from spotline import aws, layout
from spotline.config import ConfigError
from spotline.config.loader import load_yaml_document
from spotline.config.model import InferenceSection
from spotline.config.schema import build
from spotline.drop_bucket import DropBucket
from spotline.first_attempt import fail_first_attempt, start_first_attempt
from spotline.jobspec import Resources, job_request, s3_channel
from spotline.ledger import LedgerTable, RunLedger, RunSource
from spotline.naming import job_name, run_id_for_object
from spotline.notify import Notifier
from spotline.policy import RunPolicy
from spotline.settings import Settings
from spotline.states import RunStatus
from spotline.training_jobs import JobRequestRejected, TrainingJobs

logger = logging.getLogger(__name__)

KIND = "inference"
MODEL_CHANNEL = "model"
IMAGES_CHANNEL = "images"
JOB_FILE = "_job.yaml"
MAX_JOB_FILE_BYTES = 64 * 1024
TAG_BATCH = "spotline:batch"
LAUNCH_LEASE_SECONDS = 300
RETRY_BACKOFF_S = 60


def batch_prefix(batch: str) -> str:
    return f"{layout.INFERENCE}{batch}/"


def inference_run_id(bucket: str, batch: str, generation: int, part: int) -> str:
    """``<slug of the batch>-<12 hex>``: one run per (batch, generation, part), whoever computes it."""
    return run_id_for_object(bucket, f"{layout.INFERENCE}{batch}", f"g{generation}-p{part}", kind=KIND)


def manifest_key(run_id: str) -> str:
    return f"{layout.run_prefix(run_id)}images.manifest"


def manifest_body(bucket: str, batch: str, relative_keys: Sequence[str]) -> bytes:
    """The ManifestFile: the batch folder as prefix, then each image's key relative to it (UTF-8)."""
    document: list[Any] = [{"prefix": f"s3://{bucket}/{batch_prefix(batch)}"}, *relative_keys]
    return json.dumps(document, ensure_ascii=False).encode()


def split_evenly(keys: Sequence[str], max_per_part: int) -> list[list[str]]:
    """⌈n / max⌉ parts of near-equal size, in key order (well-sized jobs, no runt last part)."""
    if not keys:
        return []
    parts = -(-len(keys) // max(1, max_per_part))
    size, extra = divmod(len(keys), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(list(keys[start:end]))
        start = end
    return out


class ModelUnavailable(Exception):
    """The folder's ``_job.yaml`` names no usable model (or is malformed); the batch waits."""

    def __init__(self, reason: str, version: str) -> None:
        self.version = version
        super().__init__(reason)


@dataclass(frozen=True)
class ModelChoice:
    """The model a close runs with: where its archive is, where it came from, job-file overrides."""

    uri: str
    source: str  # "promoted" or "job-file"
    run_id: str | None = None
    lineage: Mapping[str, Any] = field(default_factory=dict)
    hyperparameters: Mapping[str, str] = field(default_factory=dict)
    job_file_key: str | None = None
    job_file_version: str | None = None

    def to_item(self) -> dict[str, Any]:
        item = asdict(self)
        item["lineage"] = dict(self.lineage)
        item["hyperparameters"] = dict(self.hyperparameters)
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ModelChoice:
        fields: dict[str, Any] = {k: item[k] for k in cls.__dataclass_fields__ if k in item}
        return cls(**fields)


PromotedModel = Callable[[LedgerTable], "dict[str, Any] | None"]


def _promoted_model(table: LedgerTable) -> dict[str, Any] | None:
    from spotline.ledger.models import promoted_model

    return promoted_model(table)


class ModelResolver:
    """Which model a batch runs with: the folder's ``_job.yaml`` if present, else the promoted one."""

    def __init__(
        self,
        settings: Settings,
        *,
        ledger: RunLedger,
        s3: Any | None = None,
        promoted: PromotedModel = _promoted_model,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.bucket = DropBucket(settings, s3)
        self.promoted = promoted

    @property
    def s3(self) -> Any:
        return self.bucket.s3

    def resolve(self, batch: str) -> ModelChoice | None:
        """The model, None if none is promoted yet, or :class:`ModelUnavailable` for a bad job file."""
        job_file = self._read_job_file(batch)
        if job_file is not None:
            return self._from_job_file(batch, *job_file)
        record = self.promoted(self.ledger.table)
        if not record or not record.get("model_artifact"):
            return None
        lineage = {k: v for k, v in record.items() if k not in ("order",)}
        return ModelChoice(
            uri=str(record["model_artifact"]), source="promoted", run_id=record.get("run_id"), lineage=lineage
        )

    def _read_job_file(self, batch: str) -> tuple[bytes, str, str] | None:
        from botocore.exceptions import ClientError

        key = batch_prefix(batch) + JOB_FILE
        try:
            response = self.s3.get_object(Bucket=self.settings.bucket, Key=key)
        except ClientError as e:
            if aws.error_code(e) in ("NoSuchKey", "404"):
                return None
            raise
        body = response["Body"]
        try:
            data: bytes = body.read(MAX_JOB_FILE_BYTES + 1)
        finally:
            body.close()
        version = str(response.get("VersionId") or response.get("ETag", "")).strip('"')
        return data, key, version

    def _from_job_file(self, batch: str, data: bytes, key: str, version: str) -> ModelChoice:
        def refuse(reason: str) -> ModelUnavailable:
            return ModelUnavailable(f"{key}: {reason}", version)

        try:
            document = load_yaml_document(data, max_bytes=MAX_JOB_FILE_BYTES)
        except ConfigError as e:
            raise refuse(str(e)) from e
        if not isinstance(document, dict):
            raise refuse("expected a mapping with 'model' and optionally 'inference'")
        unknown = sorted(set(document) - {"model", "inference"})
        if unknown:
            raise refuse(f"unknown key(s) {', '.join(unknown)} (allowed: model, inference)")
        overrides = document.get("inference") or {}
        try:
            build(InferenceSection, overrides, "inference")
        except ConfigError as e:
            raise refuse(str(e)) from e
        hyperparameters = {f"inference.{k}": _hp(v) for k, v in overrides.items()}
        named = document.get("model")
        if named is None:
            record = self.promoted(self.ledger.table)
            if not record or not record.get("model_artifact"):
                raise refuse("names no model and no model is promoted yet")
            lineage = {k: v for k, v in record.items() if k != "order"}
            return ModelChoice(
                str(record["model_artifact"]),
                "promoted",
                record.get("run_id"),
                lineage,
                hyperparameters,
                key,
                version,
            )
        if not isinstance(named, str) or not named:
            raise refuse("'model' must be a training run id or an s3:// URI of a model.tar.gz")
        if named.startswith("s3://"):
            bucket, _, object_key = named[5:].partition("/")
            allowed = {self.settings.bucket, *self.settings.extra_data_buckets}
            if bucket not in allowed or not object_key.endswith(".tar.gz"):
                raise refuse(f"model {named!r} must be a .tar.gz in {', '.join(sorted(allowed))}")
            lineage = {"model_artifact": named, "named_in": key}
            return ModelChoice(named, "job-file", None, lineage, hyperparameters, key, version)
        return self._from_run(named, hyperparameters, key, version, refuse)

    def _from_run(
        self,
        run_id: str,
        hyperparameters: Mapping[str, str],
        key: str,
        version: str,
        refuse: Callable[[str], ModelUnavailable],
    ) -> ModelChoice:
        run = self.ledger.get_run(run_id)
        if run is None or run.get("kind", "training") != "training":
            raise refuse(f"model {run_id!r} is not a spotline training run")
        if run.get("status") != RunStatus.SUCCEEDED.value:
            raise refuse(f"training run {run_id} is {run.get('status')}, not SUCCEEDED")
        attempt = self.ledger.get_attempt(run_id, int(run.get("attempt", 1))) or {}
        name = attempt.get("job_name")
        if not name:
            raise refuse(f"training run {run_id} has no recorded job")
        # SageMaker writes a job's archive to <S3OutputPath>/<job name>/output/model.tar.gz.
        uri = f"{layout.output_uri(self.settings.bucket, run_id)}{name}/output/model.tar.gz"
        lineage = {
            "run_id": run_id,
            "job_name": name,
            "config_key": run.get("source_key"),
            "model_artifact": uri,
            "named_in": key,
        }
        return ModelChoice(uri, "job-file", run_id, lineage, hyperparameters, key, version)


def _hp(value: Any) -> str:
    """A hyperparameter value as the container parses it back (YAML scalars)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def inference_policy(settings: Settings) -> RunPolicy:
    """Recovery policy of an inference run: the template's ladder, Spot only, resume past max runtime."""
    return RunPolicy(
        ladder=settings.inference_instance_types,
        spot=True,
        max_attempts=settings.inference_max_attempts,
        on_demand_fallback=False,
        budget_usd=None,
        continue_after_max_runtime=True,
        retry_backoff_s=RETRY_BACKOFF_S,
        max_wait_s=_max_wait(settings),
        instance_count=1,
    )


def _max_wait(settings: Settings) -> int:
    runtime = settings.inference_max_runtime_s
    return max(settings.inference_max_wait_s or 2 * runtime, runtime)


def inference_request(
    *, settings: Settings, run_id: str, batch: str, manifest_uri: str, model: ModelChoice
) -> dict[str, Any]:
    """Attempt 1's CreateTrainingJob request for one part of a batch."""
    return job_request(
        settings=settings,
        run_id=run_id,
        kind=KIND,
        source_key=f"{layout.INFERENCE}{batch}",
        channels=[
            s3_channel(MODEL_CHANNEL, model.uri, "File"),
            s3_channel(IMAGES_CHANNEL, manifest_uri, "File", "ManifestFile"),
        ],
        resources=Resources(
            instance_type=settings.inference_instance_types[0],
            instance_count=1,
            volume_gb=settings.inference_volume_gb,
            max_runtime_s=settings.inference_max_runtime_s,
            max_wait_s=_max_wait(settings),
        ),
        hyperparameters={"mode": "inference", **model.hyperparameters},
        extra_tags={TAG_BATCH: batch},
    )


@dataclass(frozen=True)
class PartLaunch:
    """What launching one part did: ``launched``, ``already``, ``busy`` (retry later) or ``failed``."""

    action: str
    run_id: str
    job_name: str
    reason: str = ""


class InferenceLauncher:
    """Writes manifests and starts one inference run per part; every step may be repeated."""

    def __init__(
        self,
        settings: Settings,
        *,
        ledger: RunLedger,
        jobs: TrainingJobs,
        notifier: Notifier,
        s3: Any | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.jobs = jobs
        self.notifier = notifier
        self.bucket = DropBucket(settings, s3)
        self.clock = clock

    @property
    def s3(self) -> Any:
        return self.bucket.s3

    def write_manifest(self, run_id: str, batch: str, relative_keys: Sequence[str]) -> str:
        key = manifest_key(run_id)
        self.bucket.put(key, manifest_body(self.settings.bucket, batch, relative_keys), "application/json")
        return key

    def launch_part(
        self, part: Mapping[str, Any], *, batch: str, generation: int, model: ModelChoice
    ) -> PartLaunch:
        """Start the run of one part (recorded in the close as run_id, part, parts, images, manifest_key)."""
        run_id = str(part["run_id"])
        first_job = job_name(self.settings.job_prefix, run_id, 1)
        now = self.clock()
        source = RunSource(
            self.settings.bucket, f"{layout.INFERENCE}{batch}", f"g{generation}-p{part['part']}"
        )
        attrs = {
            "batch": batch,
            "generation": generation,
            "part": int(part["part"]),
            "parts": int(part["parts"]),
            "image_count": int(part["images"]),
            "manifest_key": part["manifest_key"],
            "model": model.to_item(),
        }
        created = self.ledger.create_run(
            run_id, kind=KIND, source=source, now=now, lease_seconds=LAUNCH_LEASE_SECONDS, attrs=attrs
        )
        if created is None:
            run = self.ledger.get_run(run_id) or {}
            if run.get("status") != RunStatus.PENDING.value:
                return PartLaunch("already", run_id, first_job)
            lease_until = int(run.get("lease_until", 0))
            if lease_until > now:
                return PartLaunch("already" if self.jobs.exists(first_job) else "busy", run_id, first_job)
            if not self.ledger.take_over_launch(
                run_id, seen_lease_until=lease_until, now=now, lease_seconds=LAUNCH_LEASE_SECONDS
            ):
                return PartLaunch("busy", run_id, first_job)
        try:
            return self._launch(run_id, batch, part, model)
        except Exception:
            self.ledger.release_launch(run_id, now=self.clock())
            raise

    def _launch(self, run_id: str, batch: str, part: Mapping[str, Any], model: ModelChoice) -> PartLaunch:
        request = inference_request(
            settings=self.settings,
            run_id=run_id,
            batch=batch,
            manifest_uri=f"s3://{self.settings.bucket}/{part['manifest_key']}",
            model=model,
        )
        config_key = None
        if model.job_file_key:
            config_key = f"{layout.run_prefix(run_id)}job.yaml"
            self.bucket.copy(model.job_file_key, config_key)
        name = str(request["TrainingJobName"])
        try:
            start_first_attempt(
                ledger=self.ledger,
                jobs=self.jobs,
                run_id=run_id,
                request=request,
                policy=inference_policy(self.settings),
                config_key=config_key,
                clock=self.clock,
            )
        except JobRequestRejected as e:
            if e.code == "ResourceLimitExceeded":
                self.ledger.release_launch(run_id, now=self.clock())
                return PartLaunch("busy", run_id, name, str(e))
            return self._refused(run_id, batch, name, e)
        logger.info("launched %s for batch %s", name, batch, extra={"run_id": run_id, "job_name": name})
        return PartLaunch("launched", run_id, name)

    def _refused(self, run_id: str, batch: str, name: str, error: JobRequestRejected) -> PartLaunch:
        """SageMaker refused the request itself (an instance type the account lacks): fail, alert once.

        The run is settled only once the alert is out: a failed alert releases its notice and
        leaves the run PENDING, so the closer's next sweep retries both (as the launch function does).
        """
        fail_first_attempt(
            ledger=self.ledger,
            run_id=run_id,
            reason=str(error),
            now=self.clock(),
            alert=lambda: self.notifier.publish(
                f"spotline: inference for {batch} could not start",
                {"run_id": run_id, "batch": batch, "reason": str(error)},
                {"kind": "run", "status": RunStatus.FAILED.value, "run_id": run_id, "run_kind": KIND},
            ),
        )
        return PartLaunch("failed", run_id, name, str(error))
