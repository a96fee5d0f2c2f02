"""CreateTrainingJob requests: the first attempt from a config, later attempts from the first.

Every attempt of a run shares the run's ``CheckpointConfig.S3Uri`` (that is how the container
resumes) and its output path; only the name, the instance type, Spot and the stopping
condition change from one attempt to the next.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spotline import layout
from spotline.config import RunConfig
from spotline.config.root import resolve_channel_uri
from spotline.instances import has_local_storage
from spotline.metric_names import metric_definitions
from spotline.naming import job_name
from spotline.settings import Settings

CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
CONFIG_CHANNEL = "config"
TAG_RUN_ID = "spotline:run-id"
TAG_ATTEMPT = "spotline:attempt"
TAG_SOURCE_KEY = "spotline:source-key"
TAG_KIND = "spotline:kind"
# SageMaker's RetryStrategy re-runs a job on InternalServerError without our involvement.
INTERNAL_RETRIES = 2


@dataclass(frozen=True)
class Rung:
    """Where one attempt runs: an instance type, on Spot or not."""

    instance_type: str
    spot: bool


def _tag_value(text: str) -> str:
    """Tag values: letters of any script, digits, spaces and ``_ . : / = + - @``; 256 characters."""
    allowed = set("_.:/=+-@ ")
    return "".join(c if c.isalnum() or c in allowed else "_" for c in text)[:256]


def training_request(
    *,
    settings: Settings,
    run_id: str,
    config: RunConfig,
    config_key: str,
    source_key: str,
    hyperparameters: Mapping[str, str] | None = None,
    kind: str = "training",
    extra_channels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The first attempt's CreateTrainingJob request for ``config``."""
    job = config.job
    channels = [
        _channel(CONFIG_CHANNEL, f"s3://{settings.bucket}/{config_key}", "File", "S3Prefix"),
    ]
    for name, uri in {**job.channels, **(extra_channels or {})}.items():
        bucket, prefix = resolve_channel_uri(uri, settings.bucket)
        data_type = "ManifestFile" if prefix.endswith(".manifest") else "S3Prefix"
        channels.append(_channel(name, f"s3://{bucket}/{prefix}", job.input_mode, data_type))
    request: dict[str, Any] = {
        "TrainingJobName": job_name(settings.job_prefix, run_id, 1),
        "AlgorithmSpecification": {
            "TrainingImage": settings.image_uri,
            "TrainingInputMode": job.input_mode,
            "MetricDefinitions": metric_definitions(),
        },
        "RoleArn": settings.execution_role_arn,
        "HyperParameters": dict(hyperparameters or {}),
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": layout.output_uri(settings.bucket, run_id)},
        "ResourceConfig": {
            "InstanceType": job.instance_type,
            "InstanceCount": job.instance_count,
            "VolumeSizeInGB": job.volume_size_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": int(job.max_runtime)},
        "EnableNetworkIsolation": job.network_isolation,
        "EnableInterContainerTrafficEncryption": job.instance_count > 1,
        "EnableManagedSpotTraining": job.spot,
        "CheckpointConfig": {
            "S3Uri": layout.checkpoint_uri(settings.bucket, run_id),
            "LocalPath": CHECKPOINT_LOCAL_PATH,
        },
        "RetryStrategy": {"MaximumRetryAttempts": INTERNAL_RETRIES},
        "Environment": {"SPOTLINE_RUN_ID": run_id, "SPOTLINE_ATTEMPT": "1"},
        "Tags": [
            {"Key": TAG_RUN_ID, "Value": run_id},
            {"Key": TAG_ATTEMPT, "Value": "1"},
            {"Key": TAG_SOURCE_KEY, "Value": _tag_value(source_key)},
            {"Key": TAG_KIND, "Value": kind},
        ],
    }
    max_wait = job.effective_max_wait
    if max_wait is not None:
        request["StoppingCondition"]["MaxWaitTimeInSeconds"] = max_wait
    if settings.kms_key_arn:
        request["OutputDataConfig"]["KmsKeyId"] = settings.kms_key_arn
    set_volume_encryption(request, settings.kms_key_arn)
    if job.vpc is not None:
        request["VpcConfig"] = {
            "Subnets": list(job.vpc.subnets),
            "SecurityGroupIds": list(job.vpc.security_group_ids),
        }
    return request


def request_for_attempt(
    first: Mapping[str, Any], *, job_prefix: str, run_id: str, attempt: int, rung: Rung, max_wait: int | None
) -> dict[str, Any]:
    """Attempt ``attempt`` of a run: the first request with a new name, rung and stopping condition.

    ``max_wait`` is the Spot wait budget for this attempt; it is dropped when the rung is
    on-demand (SageMaker refuses MaxWaitTimeInSeconds without Managed Spot).
    """
    request = copy.deepcopy(dict(first))
    request["TrainingJobName"] = job_name(job_prefix, run_id, attempt)
    request["ResourceConfig"]["InstanceType"] = rung.instance_type
    set_volume_encryption(request, request["OutputDataConfig"].get("KmsKeyId"))
    request["EnableManagedSpotTraining"] = rung.spot
    stopping = {"MaxRuntimeInSeconds": request["StoppingCondition"]["MaxRuntimeInSeconds"]}
    if rung.spot and max_wait is not None:
        stopping["MaxWaitTimeInSeconds"] = max(max_wait, stopping["MaxRuntimeInSeconds"])
    request["StoppingCondition"] = stopping
    request.setdefault("Environment", {})["SPOTLINE_ATTEMPT"] = str(attempt)
    request["Tags"] = [
        {"Key": t["Key"], "Value": str(attempt) if t["Key"] == TAG_ATTEMPT else t["Value"]}
        for t in request["Tags"]
    ]
    return request


def set_volume_encryption(request: dict[str, Any], kms_key_arn: str | None) -> None:
    """Encrypt the EBS volume with our key, except where SageMaker refuses it (local NVMe storage,
    which the instance's hardware encrypts)."""
    resources = request["ResourceConfig"]
    if kms_key_arn and not has_local_storage(resources["InstanceType"]):
        resources["VolumeKmsKeyId"] = kms_key_arn
    else:
        resources.pop("VolumeKmsKeyId", None)


def _channel(name: str, uri: str, mode: str, data_type: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": data_type,
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "InputMode": mode,
    }
