"""A closed batch becomes Spot inference jobs run through the Training API.

Each part of a close gets a manifest of exactly its images (SageMaker ``ManifestFile``: a JSON
array, ``{"prefix": "s3://bucket/inference/<batch>/"}`` then relative keys) under
``runs/<run-id>/``, a run in the ledger (kind ``inference``, with the same ``policy`` and
``first_request`` a training run has, so the job-state function's ladder relaunches it) and one
CreateTrainingJob: Spot, ``mode=inference``, channels ``model`` and ``images``, the run's checkpoint
URI (finished shards survive an interruption). Run ids derive from (bucket, batch, generation,
part), job names from the run id, so every step is safe to repeat.

The model is the one named in an optional ``inference/<batch>/_job.yaml``, else the promoted one
(:mod:`spotline.inference.model_resolver`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from spotline.adapters.training_jobs import JobRequestRejected
from spotline.domain import layout
from spotline.domain.model_choice import ModelChoice
from spotline.domain.naming import job_name, run_id_for_object
from spotline.domain.policy import RunPolicy
from spotline.domain.requests import Resources, job_request, s3_channel
from spotline.domain.settings import Settings
from spotline.domain.states import RunKind, RunStatus
from spotline.inference.model_resolver import batch_prefix
from spotline.inference.results import InferenceFailed
from spotline.ledger.records import ClosePart, InferencePart, RunSource
from spotline.runs.first_attempt import FirstAttemptLauncher, LaunchInProgress
from spotline.runs.publish import NOTICE_KIND

logger = logging.getLogger(__name__)

MODEL_CHANNEL = "model"
IMAGES_CHANNEL = "images"
TAG_BATCH = "spotline:batch"
RETRY_BACKOFF_S = 60


def inference_run_id(bucket: str, batch: str, generation: int, part: int) -> str:
    """``<slug of the batch>-<12 hex>``: one run per (batch, generation, part), whoever computes it."""
    return run_id_for_object(
        bucket, f"{layout.INFERENCE}{batch}", f"g{generation}-p{part}", kind=RunKind.INFERENCE.value
    )


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
        kind=RunKind.INFERENCE.value,
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
    """What launching one part did: ``launched``, ``already``, ``deferred`` (an account quota: its
    run waits on the relaunch queue), ``busy`` (retry later) or ``failed``."""

    action: str
    run_id: str
    job_name: str
    reason: str = ""


@dataclass
class InferenceLauncher(FirstAttemptLauncher):
    """Writes manifests and starts one inference run per part; every step may be repeated."""

    inference_failed: InferenceFailed = field(kw_only=True)

    def write_manifest(self, run_id: str, batch: str, relative_keys: Sequence[str]) -> str:
        key = manifest_key(run_id)
        self.bucket.put(key, manifest_body(self.settings.bucket, batch, relative_keys), "application/json")
        return key

    def launch_part(self, part: ClosePart, *, batch: str, generation: int, model: ModelChoice) -> PartLaunch:
        """Start the run of one part of a close."""
        run_id = part.run_id
        first_job = job_name(self.settings.job_prefix, run_id, 1)
        source = RunSource(self.settings.bucket, f"{layout.INFERENCE}{batch}", f"g{generation}-p{part.part}")
        inference = InferencePart(
            batch=batch,
            generation=generation,
            part=part.part,
            parts=part.parts,
            image_count=part.images,
            manifest_key=part.manifest_key,
            model=model,
        )
        try:
            if not self.claim(run_id, kind=RunKind.INFERENCE, source=source, inference=inference):
                return PartLaunch("already", run_id, first_job)
        except LaunchInProgress:
            return PartLaunch("busy", run_id, first_job)
        try:
            return self._launch(run_id, batch, part, model)
        except Exception:
            self.release(run_id)
            raise

    def _launch(self, run_id: str, batch: str, part: ClosePart, model: ModelChoice) -> PartLaunch:
        request = inference_request(
            settings=self.settings,
            run_id=run_id,
            batch=batch,
            manifest_uri=self.bucket.uri(part.manifest_key),
            model=model,
        )
        config_key = None
        if model.job_file_key:
            config_key = f"{layout.run_prefix(run_id)}job.yaml"
            self.bucket.copy(model.job_file_key, config_key)
        name = str(request["TrainingJobName"])
        policy = inference_policy(self.settings)
        try:
            self.start(run_id, request, policy=policy, config_key=config_key)
        except JobRequestRejected as e:
            if e.code == "ResourceLimitExceeded":  # waits with the quota backoff, up to the quota cap
                self.wait_for_quota(run_id, policy, str(e))
                return PartLaunch("deferred", run_id, name, str(e))
            return self._refused(run_id, batch, name, e)
        logger.info("launched %s for batch %s", name, batch, extra={"run_id": run_id, "job_name": name})
        return PartLaunch("launched", run_id, name)

    def _refused(self, run_id: str, batch: str, name: str, error: JobRequestRejected) -> PartLaunch:
        """SageMaker refused the request itself (an instance type the account lacks): fail, alert once.

        The part joins its close's failed parts first (the close settles without it once the
        others end). The run is settled only once the alert is out: a failed alert releases its
        notice and leaves the run PENDING, so the closer's next sweep retries all three (as the
        launch function does); SageMaker refuses the same request again.
        """
        run = self.ledger.get_run(run_id)
        if run is not None:
            self.inference_failed(run, RunStatus.FAILED, str(error), now=self.clock())
        attributes = {
            "kind": NOTICE_KIND,
            "status": RunStatus.FAILED.value,
            "run_id": run_id,
            "run_kind": RunKind.INFERENCE.value,
        }
        body = {"run_id": run_id, "batch": batch, "reason": str(error)}
        subject = f"spotline: inference for {batch} could not start"
        self.fail(run_id, str(error), lambda: self.notifier.publish(subject, body, attributes))
        return PartLaunch("failed", run_id, name, str(error))
