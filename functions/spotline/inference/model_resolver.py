"""Which model a batch runs with: the one its folder's ``_job.yaml`` names, else the promoted one.

``inference/<batch>/_job.yaml`` (optional, at most 64 KiB, read with the config loader's limits)::

    model: rail-detector-0123456789ab     # a succeeded training run id, or s3://…/model.tar.gz
    inference: {score_threshold: 0.5}     # overrides of the config's inference section

A malformed job file makes the batch wait with one alert (per version of the file) instead of
running with a model nobody chose.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass

from spotline.adapters.drop_bucket import DropBucket, ObjectMissing, ObjectTooLarge
from spotline.config import ConfigError
from spotline.config.loader import dump_yaml_value, load_yaml_document
from spotline.config.model import InferenceSection
from spotline.config.schema import build
from spotline.domain import layout
from spotline.domain.model_choice import ModelChoice, ModelSource
from spotline.domain.settings import Settings
from spotline.domain.states import RunKind, RunStatus
from spotline.ledger.models import Models
from spotline.ledger.runs import RunLedger

JOB_FILE = "_job.yaml"
MAX_JOB_FILE_BYTES = 64 * 1024


def batch_prefix(batch: str) -> str:
    return f"{layout.INFERENCE}{batch}/"


class ModelUnavailable(Exception):
    """The folder's ``_job.yaml`` names no usable model (or is malformed); the batch waits."""

    def __init__(self, reason: str, version: str) -> None:
        self.version = version
        super().__init__(reason)


@dataclass
class ModelResolver:
    settings: Settings
    _: KW_ONLY
    ledger: RunLedger
    models: Models
    bucket: DropBucket

    def resolve(self, batch: str) -> ModelChoice | None:
        """The model, None if none is promoted yet, or :class:`ModelUnavailable` for a bad job file."""
        key = batch_prefix(batch) + JOB_FILE
        try:
            data, version = self.bucket.read_versioned(key, cap=MAX_JOB_FILE_BYTES)
        except ObjectMissing:
            return self._promoted({}, None, None)
        except ObjectTooLarge as e:
            raise ModelUnavailable(f"{key}: larger than {MAX_JOB_FILE_BYTES} bytes", "too-large") from e
        return self._from_job_file(data, key, version)

    def _promoted(
        self, hyperparameters: Mapping[str, str], key: str | None, version: str | None
    ) -> ModelChoice | None:
        promotion = self.models.promoted()
        if promotion is None:
            return None
        return ModelChoice(
            uri=promotion.model_artifact,
            source=ModelSource.PROMOTED,
            run_id=promotion.run_id,
            lineage=promotion.lineage(),
            hyperparameters=dict(hyperparameters),
            job_file_key=key,
            job_file_version=version,
        )

    def _from_job_file(self, data: bytes, key: str, version: str) -> ModelChoice:
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
        hyperparameters = {f"inference.{k}": dump_yaml_value(v) for k, v in overrides.items()}
        named = document.get("model")
        if named is None:
            chosen = self._promoted(hyperparameters, key, version)
            if chosen is None:
                raise refuse("names no model and no model is promoted yet")
            return chosen
        if not isinstance(named, str) or not named:
            raise refuse("'model' must be a training run id or an s3:// URI of a model.tar.gz")
        if named.startswith("s3://"):
            bucket, _, object_key = named[5:].partition("/")
            allowed = {self.settings.bucket, *self.settings.extra_data_buckets}
            if bucket not in allowed or not object_key.endswith(".tar.gz"):
                raise refuse(f"model {named!r} must be a .tar.gz in {', '.join(sorted(allowed))}")
            lineage = {"model_artifact": named, "named_in": key}
            return ModelChoice(named, ModelSource.JOB_FILE, None, lineage, hyperparameters, key, version)
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
        if run is None or run.kind != RunKind.TRAINING:
            raise refuse(f"model {run_id!r} is not a spotline training run")
        if run.status != RunStatus.SUCCEEDED:
            raise refuse(f"training run {run_id} is {run.status}, not SUCCEEDED")
        attempt = self.ledger.get_attempt(run_id, run.attempt or 1)
        if attempt is None:
            raise refuse(f"training run {run_id} has no recorded job")
        # SageMaker writes a job's archive to <S3OutputPath>/<job name>/output/model.tar.gz.
        uri = f"{layout.output_uri(self.settings.bucket, run_id)}{attempt.job_name}/output/model.tar.gz"
        lineage = {
            "run_id": run_id,
            "job_name": attempt.job_name,
            "config_key": run.source.key,
            "model_artifact": uri,
            "named_in": key,
        }
        return ModelChoice(uri, ModelSource.JOB_FILE, run_id, lineage, hyperparameters, key, version)
