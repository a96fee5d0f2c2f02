"""CreateTrainingJob requests: the first attempt from a config, later attempts from the first.

Every attempt of a run shares the run's ``CheckpointConfig.S3Uri`` (that is how the container
resumes) and its output path; only the name, the instance type, Spot and the stopping
condition change from one attempt to the next.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spotline.config import RunConfig, as_text
from spotline.config.images import image_allowed
from spotline.config.job import CONFIG_CHANNEL
from spotline.config.root import resolve_channel_uri
from spotline.domain import layout
from spotline.domain.instances import has_local_storage
from spotline.domain.naming import job_name
from spotline.domain.retry import Rung
from spotline.domain.settings import Settings
from spotline.metric_names import metric_definitions

CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
TAG_RUN_ID = "spotline:run-id"
TAG_ATTEMPT = "spotline:attempt"
TAG_SOURCE_KEY = "spotline:source-key"
TAG_KIND = "spotline:kind"
# A job launched elsewhere (the SageMaker SDK, boto3) that asks to be spotline's: ``true``; with an
# optional spotline config for its recovery policy, named by its key under adopt/ in the drop bucket.
TAG_ADOPT = "spotline:adopt"
TAG_CONFIG = "spotline:config"
# SageMaker's RetryStrategy re-runs a job on InternalServerError without our involvement.
INTERNAL_RETRIES = 2
# What CreateTrainingJob takes that DescribeTrainingJob gives back (a run caught up from its job
# rebuilds attempt 1's request from these; a tuning job's definition takes most of them).
TRAINING_REQUEST_FIELDS = (
    "AlgorithmSpecification",
    "RoleArn",
    "HyperParameters",
    "InputDataConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
    "EnableNetworkIsolation",
    "EnableInterContainerTrafficEncryption",
    "EnableManagedSpotTraining",
    "CheckpointConfig",
    "VpcConfig",
    "RetryStrategy",
    "Environment",
)


def tag_value(text: str) -> str:
    """Tag values: letters of any script, digits, spaces and ``_ . : / = + - @``; 256 characters."""
    allowed = set("_.:/=+-@ ")
    return "".join(c if c.isalnum() or c in allowed else "_" for c in text)[:256]


@dataclass(frozen=True)
class JobImage:
    """What runs: the image (None: the stack's), the metrics SageMaker reads from its log, its
    environment. Spotline's image by default."""

    uri: str | None = None
    metric_definitions: tuple[Mapping[str, str], ...] = tuple(metric_definitions())
    environment: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, config: RunConfig) -> JobImage:
        """The image of ``config``: its ``job.image`` with the regexes of ``job.metrics``, or ours."""
        job = config.job
        environment = {name: as_text(value) for name, value in config.environment.items()}
        if job.image is None:
            return cls(environment=environment)
        definitions = tuple({"Name": name, "Regex": regex} for name, regex in job.metrics.items())
        return cls(job.image, definitions, environment)


@dataclass(frozen=True)
class Resources:
    """What one job runs on and for how long: the parts of a request a run's kind decides."""

    instance_type: str
    instance_count: int
    volume_gb: int
    max_runtime_s: int
    max_wait_s: int | None  # None: not on Spot
    input_mode: str = "File"
    network_isolation: bool = True


def job_request(
    *,
    settings: Settings,
    run_id: str,
    kind: str,
    source_key: str,
    channels: list[dict[str, Any]],
    resources: Resources,
    hyperparameters: Mapping[str, str] | None = None,
    extra_tags: Mapping[str, str] | None = None,
    image: JobImage | None = None,
) -> dict[str, Any]:
    """Attempt 1's CreateTrainingJob request: what every spotline job has, whatever its kind."""
    image = image or JobImage()
    request: dict[str, Any] = {
        "TrainingJobName": job_name(settings.job_prefix, run_id, 1),
        "AlgorithmSpecification": {
            "TrainingImage": image.uri or settings.image_uri,
            "TrainingInputMode": resources.input_mode,
            "MetricDefinitions": [dict(d) for d in image.metric_definitions],
        },
        "RoleArn": settings.execution_role_arn,
        "HyperParameters": dict(hyperparameters or {}),
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": layout.output_uri(settings.bucket, run_id)},
        "ResourceConfig": {
            "InstanceType": resources.instance_type,
            "InstanceCount": resources.instance_count,
            "VolumeSizeInGB": resources.volume_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": resources.max_runtime_s},
        "EnableNetworkIsolation": resources.network_isolation,
        "EnableInterContainerTrafficEncryption": resources.instance_count > 1,
        "EnableManagedSpotTraining": resources.max_wait_s is not None,
        "CheckpointConfig": {
            "S3Uri": layout.checkpoint_uri(settings.bucket, run_id),
            "LocalPath": CHECKPOINT_LOCAL_PATH,
        },
        "RetryStrategy": {"MaximumRetryAttempts": INTERNAL_RETRIES},
        "Environment": {**image.environment, "SPOTLINE_RUN_ID": run_id, "SPOTLINE_ATTEMPT": "1"},
        "Tags": [
            {"Key": TAG_RUN_ID, "Value": run_id},
            {"Key": TAG_ATTEMPT, "Value": "1"},
            {"Key": TAG_SOURCE_KEY, "Value": tag_value(source_key)},
            {"Key": TAG_KIND, "Value": kind},
            *({"Key": k, "Value": tag_value(v)} for k, v in (extra_tags or {}).items()),
        ],
    }
    if resources.max_wait_s is not None:
        request["StoppingCondition"]["MaxWaitTimeInSeconds"] = max(
            resources.max_wait_s, resources.max_runtime_s
        )
    if settings.kms_key_arn:
        request["OutputDataConfig"]["KmsKeyId"] = settings.kms_key_arn
    set_volume_encryption(request, settings.kms_key_arn)
    return request


def training_request(
    *, settings: Settings, run_id: str, config: RunConfig, config_key: str, source_key: str
) -> dict[str, Any]:
    """The first attempt's CreateTrainingJob request for ``config``."""
    job = config.job
    channels = [s3_channel(CONFIG_CHANNEL, f"s3://{settings.bucket}/{config_key}", "File")]
    for name, uri in job.channels.items():
        bucket, prefix = resolve_channel_uri(uri, settings.bucket)
        channels.append(s3_channel(name, f"s3://{bucket}/{prefix}", job.input_mode))
    resources = Resources(
        instance_type=job.instance_type,
        instance_count=job.instance_count,
        volume_gb=job.volume_size_gb,
        max_runtime_s=int(job.max_runtime),
        max_wait_s=job.effective_max_wait,
        input_mode=job.input_mode,
        network_isolation=job.network_isolation,
    )
    request = job_request(
        settings=settings,
        run_id=run_id,
        kind="training",
        source_key=source_key,
        channels=channels,
        resources=resources,
        hyperparameters={name: as_text(value) for name, value in config.hyperparameters.items()},
        image=JobImage.of(config),
    )
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


def relaunch_refusal(first: Mapping[str, Any], settings: Settings) -> str | None:
    """Why spotline cannot create the next attempt of a run whose first job was ``first`` (None: it can).

    Relaunches pass the stack's execution role and no other, and that role pulls the stack's image
    and its AllowedImages only: a job launched elsewhere with another role or image is followed and
    settled, but an attempt of it cannot be started."""
    role = first.get("RoleArn")
    if role != settings.execution_role_arn:
        return (
            f"the job runs with role {role}, and spotline starts jobs only with the stack's execution role "
            f"{settings.execution_role_arn}: launch it with that role to have it relaunched"
        )
    image = (first.get("AlgorithmSpecification") or {}).get("TrainingImage")
    if image and image != settings.image_uri and not image_allowed(str(image), settings.allowed_images):
        return f"its image {image} is not one of the stack's AllowedImages, which its execution role pulls"
    return None


def set_volume_encryption(request: dict[str, Any], kms_key_arn: str | None) -> None:
    """Encrypt the EBS volume with our key, except where SageMaker refuses it (local NVMe storage,
    which the instance's hardware encrypts)."""
    resources = request["ResourceConfig"]
    if kms_key_arn and not has_local_storage(resources["InstanceType"]):
        resources["VolumeKmsKeyId"] = kms_key_arn
    else:
        resources.pop("VolumeKmsKeyId", None)


def s3_channel(name: str, uri: str, mode: str, data_type: str = "S3Prefix") -> dict[str, Any]:
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
