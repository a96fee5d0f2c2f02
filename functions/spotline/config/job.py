"""The ``job`` and ``promote`` sections: what SageMaker runs, on what, for how long, at what cost."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from spotline.config.durations import format_duration
from spotline.config.images import ECR_IMAGE_URI
from spotline.config.instance_types import TRAINING_INSTANCE_TYPES, suggest_instance_type
from spotline.config.schema import Duration, Issue, setting

INSTANCE_TYPE = r"ml\.[a-z0-9]+\.[a-z0-9]+"
CHANNEL_NAME = re.compile(r"[A-Za-z0-9.\-_]{1,64}")
RESERVED_CHANNELS = frozenset({"config", "model", "images"})  # of spotline's image
CONFIG_CHANNEL = "config"  # every job's: the run's YAML file, whatever the image
# What spotline's own image reads in training mode (a channel it does not read would be paid for and
# ignored: a typo such as "vall" would silently train without validation). An image of your own
# reads the channels it names.
IMAGE_CHANNELS = ("train", "val")
MAX_SAGEMAKER_SECONDS = 28 * 86400
# SageMaker's MetricDefinitions: at most 40, a name of 1..255 characters, a regex of 1..500.
MAX_METRICS = 40
METRIC_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,255}")
MAX_METRIC_REGEX_CHARS = 500


@dataclass(frozen=True, kw_only=True)
class VpcSection:
    subnets: tuple[str, ...] = setting(
        required=True,
        min_items=1,
        max_items=16,
        pattern=r"subnet-[0-9a-f]{8,17}",
        expect="a subnet id (subnet-...)",
        help="subnet ids",
    )
    security_group_ids: tuple[str, ...] = setting(
        required=True,
        min_items=1,
        max_items=5,
        pattern=r"sg-[0-9a-f]{8,17}",
        expect="a security group id (sg-...)",
        help="security group ids",
    )


@dataclass(frozen=True, kw_only=True)
class JobSection:
    image: str | None = setting(
        None,
        pattern=ECR_IMAGE_URI,
        expect="an ECR image URI (<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>)",
        help="a container image of your own on SageMaker's contract, from the stack's allowed list "
        "(default: the stack's image)",
    )
    metrics: Mapping[str, str] = setting(
        default_factory=dict,
        max_items=MAX_METRICS,
        help="job.image only: metric name -> regex whose first group reads its value from the job's "
        "log (SageMaker MetricDefinitions; promotion gates read these names)",
    )
    checkpoints: bool | None = setting(
        None,
        help="job.image only: the image resumes from /opt/ml/checkpoints (without it a relaunch "
        "restarts from zero; spotline's image always resumes)",
    )
    instance_type: str = setting(
        "ml.g4dn.xlarge", pattern=INSTANCE_TYPE, help="a SageMaker instance type such as ml.g4dn.xlarge"
    )
    fallback_instance_types: tuple[str, ...] = setting(
        default_factory=tuple,
        max_items=8,
        pattern=INSTANCE_TYPE,
        expect="a SageMaker instance type such as ml.g5.xlarge",
        help="instance types tried in order when the first has no Spot capacity",
    )
    instance_count: int = setting(1, min=1, max=16, help="hosts per attempt (data-parallel over all GPUs)")
    spot: bool = setting(True, help="run on Managed Spot capacity (about 70% cheaper, may be interrupted)")
    max_runtime: Duration = setting(
        Duration(4 * 3600), min=60, max=MAX_SAGEMAKER_SECONDS, help="training time allowed per attempt"
    )
    max_wait: Duration | None = setting(
        None,
        min=60,
        max=MAX_SAGEMAKER_SECONDS,
        help="Spot only: runtime plus time spent waiting for capacity per attempt (default: 2 x max_runtime)",
    )
    max_attempts: int = setting(5, min=1, max=20, help="attempts per run, the first one included")
    on_demand_fallback: bool = setting(
        False, help="after the Spot rungs, one last attempt on on-demand capacity (full price)"
    )
    budget_usd: float | None = setting(
        None, min=0.01, help="estimated spend over all attempts after which no relaunch starts"
    )
    continue_after_max_runtime: bool = setting(
        False, help="relaunch from the last checkpoint when an attempt reaches max_runtime"
    )
    retry_backoff: Duration = setting(
        Duration(60), min=1, max=6 * 3600, help="first relaunch delay; doubles each attempt, with jitter"
    )
    volume_size_gb: int = setting(50, min=1, max=16384, help="EBS volume per host, in GB")
    input_mode: Literal["File", "FastFile"] = setting("File", help="how channels reach the container")
    channels: Mapping[str, str] = setting(
        required=True,
        min_items=1,
        max_items=16,
        help="data channels: name -> s3://bucket/prefix or a prefix of the drop bucket (needs 'train')",
    )
    network_isolation: bool = setting(True, help="no network access from the container")
    vpc: VpcSection | None = setting(None, help="run inside a VPC (subnets and security groups)")

    @property
    def effective_max_wait(self) -> int | None:
        """MaxWaitTimeInSeconds for a Spot attempt (None when Spot is off)."""
        if not self.spot:
            return None
        if self.max_wait is not None:
            return int(self.max_wait)
        return min(2 * int(self.max_runtime), MAX_SAGEMAKER_SECONDS)

    @property
    def resumes(self) -> bool:
        """Whether a relaunched attempt continues from the run's checkpoints (else it starts over)."""
        return self.image is None or bool(self.checkpoints)

    @property
    def instance_ladder(self) -> tuple[str, ...]:
        """The instance types of the run, first choice first, without repeats."""
        return tuple(dict.fromkeys((self.instance_type, *self.fallback_instance_types)))

    def checks(self, path: str) -> list[Issue]:
        issues = []
        at = f"{path}." if path else ""
        rungs = [("instance_type", self.instance_type)] + [
            (f"fallback_instance_types[{i}]", t) for i, t in enumerate(self.fallback_instance_types)
        ]
        for key, instance_type in rungs:
            if instance_type not in TRAINING_INSTANCE_TYPES:
                close = suggest_instance_type(instance_type)
                hint = f"; did you mean '{close}'?" if close else ""
                issues.append(
                    Issue(f"{at}{key}", instance_type, f"not an instance type SageMaker trains on{hint}")
                )
        if self.max_wait is not None:
            if not self.spot:
                issues.append(Issue(f"{at}max_wait", self.max_wait, "only allowed with spot: true"))
            elif self.max_wait < self.max_runtime:
                issues.append(
                    Issue(
                        f"{at}max_wait",
                        format_duration(int(self.max_wait)),
                        f"must be at least max_runtime ({format_duration(int(self.max_runtime))})",
                    )
                )
        issues.extend(self._image_issues(at))
        if self.image is None and "train" not in self.channels:
            issues.append(Issue(f"{at}channels", dict(self.channels), "needs a 'train' channel"))
        for name in self.channels:
            if not CHANNEL_NAME.fullmatch(name):
                issues.append(Issue(f"{at}channels.{name}", name, "channel names use A-Z a-z 0-9 . - _"))
            elif name in (RESERVED_CHANNELS if self.image is None else {CONFIG_CHANNEL}):
                issues.append(
                    Issue(f"{at}channels.{name}", name, "this channel name is reserved by spotline")
                )
        if self.on_demand_fallback and not self.spot:
            issues.append(Issue(f"{at}on_demand_fallback", True, "only meaningful with spot: true"))
        return issues

    def _image_issues(self, at: str) -> list[Issue]:
        """``metrics`` and ``checkpoints`` describe an image of your own; spotline's image has its own."""
        if self.image is None:
            issues = []
            if self.metrics:
                issues.append(
                    Issue(
                        f"{at}metrics",
                        dict(self.metrics),
                        "spotline's image reports its own metrics (train/loss, val/mAP50, ...): "
                        "job.metrics describes a job.image of your own",
                    )
                )
            if self.checkpoints is not None:
                issues.append(
                    Issue(
                        f"{at}checkpoints",
                        self.checkpoints,
                        "spotline's image always resumes from its checkpoints: "
                        "job.checkpoints describes a job.image of your own",
                    )
                )
            return issues
        return [issue for name, regex in self.metrics.items() for issue in _metric_issues(at, name, regex)]


def _metric_issues(at: str, name: str, regex: str) -> list[Issue]:
    """A metric SageMaker can read: a name it takes and a regex with a group for the value."""
    path = f"{at}metrics.{name}"
    if not METRIC_NAME.fullmatch(name):
        return [Issue(path, name, "a metric name of 1 to 255 printable characters")]
    if not regex or len(regex) > MAX_METRIC_REGEX_CHARS:
        return [Issue(path, regex, f"a regex of 1 to {MAX_METRIC_REGEX_CHARS} characters")]
    try:
        groups = re.compile(regex).groups
    except re.error as e:
        return [Issue(path, regex, f"a valid regex ({e})")]
    if groups < 1:
        return [Issue(path, regex, "a regex with a group around the value, e.g. 'accuracy=([0-9.]+)'")]
    return []


@dataclass(frozen=True, kw_only=True)
class PromoteSection:
    metric: str = setting(
        "val/mAP50",
        pattern=METRIC_NAME.pattern,
        expect="a metric name",
        help="the metric the gate reads: val/mAP50 or val/mAP with spotline's image, a name of "
        "job.metrics with a job.image of your own",
    )
    min: float = setting(required=True, help="the lowest value that promotes the model")
