"""The functions' environment: every variable named once, read once at cold start, typed.

A missing or malformed variable fails the cold start with its name, not a KeyError deep in a
handler. The template sets these in ``Globals.Function.Environment``; the local stack sets the
same names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from spotline.config.images import ALLOWED_IMAGE_PATTERN
from spotline.domain.naming import JOB_PREFIX


class SettingsError(RuntimeError):
    """The function's environment is incomplete or malformed."""


# name -> help; required unless a default is given in Settings.from_env
BUCKET = "SPOTLINE_BUCKET"
TABLE = "SPOTLINE_TABLE"
TOPIC_ARN = "SPOTLINE_TOPIC_ARN"
EVENT_BUS = "SPOTLINE_EVENT_BUS"
IMAGE_URI = "SPOTLINE_IMAGE_URI"
EXECUTION_ROLE_ARN = "SPOTLINE_EXECUTION_ROLE_ARN"
JOB_PREFIX_VAR = "SPOTLINE_JOB_PREFIX"
KMS_KEY_ARN = "SPOTLINE_KMS_KEY_ARN"
EXTRA_DATA_BUCKETS = "SPOTLINE_EXTRA_DATA_BUCKETS"
# Comma-separated ECR repository ARN patterns a config's job.image may name (the stack's image always).
ALLOWED_IMAGES = "SPOTLINE_ALLOWED_IMAGES"
MAX_CONFIG_BYTES = "SPOTLINE_MAX_CONFIG_BYTES"
RELAUNCH_QUEUE_URL = "SPOTLINE_RELAUNCH_QUEUE_URL"  # job-state and relaunch functions: the retry delay queue
SPOT_MARKET = "SPOTLINE_SPOT_MARKET"  # "aws" (default) or "emulated": the local stack's, said on reports
REGION = "AWS_REGION"  # set by Lambda itself: the region of the console links in alerts
PRICES = "SPOTLINE_PRICES"  # optional JSON {"ml.g4dn.xlarge": 0.736, ...}: on-demand USD per instance-hour
# Image batches and inference jobs (intake and batch-closer functions).
MAX_IMAGE_BYTES = "SPOTLINE_MAX_IMAGE_BYTES"  # larger objects under inference/ are skipped
BATCH_SETTLE_SECONDS = "SPOTLINE_BATCH_SETTLE_SECONDS"  # a batch quiet this long closes
BATCH_MAX_IMAGES = "SPOTLINE_BATCH_MAX_IMAGES"  # images per inference job; bigger batches are split
INFERENCE_INSTANCE_TYPE = "SPOTLINE_INFERENCE_INSTANCE_TYPE"  # one type, or a comma-separated ladder
INFERENCE_MAX_RUNTIME_S = "SPOTLINE_INFERENCE_MAX_RUNTIME_S"  # MaxRuntimeInSeconds per attempt
INFERENCE_MAX_WAIT_S = "SPOTLINE_INFERENCE_MAX_WAIT_S"  # Spot MaxWaitTimeInSeconds (default 2 x runtime)
INFERENCE_MAX_ATTEMPTS = "SPOTLINE_INFERENCE_MAX_ATTEMPTS"  # attempts per inference job, first included
INFERENCE_VOLUME_GB = "SPOTLINE_INFERENCE_VOLUME_GB"  # EBS volume (File mode copies the images there)


@dataclass(frozen=True)
class Settings:
    bucket: str
    table: str
    topic_arn: str
    image_uri: str
    execution_role_arn: str
    job_prefix: str
    event_bus: str = "default"
    kms_key_arn: str | None = None
    extra_data_buckets: frozenset[str] = field(default_factory=frozenset)
    allowed_images: tuple[str, ...] = ()
    max_config_bytes: int = 256 * 1024
    relaunch_queue_url: str | None = None
    prices_json: str | None = None
    max_image_bytes: int = 50 * 1024 * 1024
    batch_settle_seconds: int = 120
    batch_max_images: int = 5000
    inference_instance_types: tuple[str, ...] = ("ml.g4dn.xlarge",)
    inference_max_runtime_s: int = 3600
    inference_max_wait_s: int | None = None
    inference_max_attempts: int = 5
    inference_volume_gb: int = 50
    region: str = "us-east-1"
    spot_market_emulated: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        spot_market = (env.get(SPOT_MARKET) or "aws").strip().lower()
        if spot_market not in ("aws", "emulated"):
            raise SettingsError(f"{SPOT_MARKET} must be 'aws' or 'emulated', got {spot_market!r}")
        missing = [
            name
            for name in (BUCKET, TABLE, TOPIC_ARN, IMAGE_URI, EXECUTION_ROLE_ARN, JOB_PREFIX_VAR)
            if not env.get(name)
        ]
        if missing:
            raise SettingsError(f"missing environment variable(s): {', '.join(missing)}")
        prefix = env[JOB_PREFIX_VAR]
        if not JOB_PREFIX.fullmatch(prefix):
            raise SettingsError(f"{JOB_PREFIX_VAR}={prefix!r} must match {JOB_PREFIX.pattern}")
        try:
            max_config_bytes = int(env.get(MAX_CONFIG_BYTES, str(256 * 1024)))
        except ValueError as e:
            raise SettingsError(f"{MAX_CONFIG_BYTES} must be a whole number of bytes") from e
        extra = frozenset(b.strip() for b in env.get(EXTRA_DATA_BUCKETS, "").split(",") if b.strip())
        images = tuple(p.strip() for p in env.get(ALLOWED_IMAGES, "").split(",") if p.strip())
        malformed = [p for p in images if not re.fullmatch(ALLOWED_IMAGE_PATTERN, p)]
        if malformed:
            raise SettingsError(
                f"{ALLOWED_IMAGES}: not an ECR repository ARN pattern: {', '.join(malformed)}"
            )
        return cls(
            bucket=env[BUCKET],
            table=env[TABLE],
            topic_arn=env[TOPIC_ARN],
            image_uri=env[IMAGE_URI],
            execution_role_arn=env[EXECUTION_ROLE_ARN],
            job_prefix=prefix,
            event_bus=env.get(EVENT_BUS) or "default",
            kms_key_arn=env.get(KMS_KEY_ARN) or None,
            extra_data_buckets=extra,
            allowed_images=images,
            max_config_bytes=max_config_bytes,
            relaunch_queue_url=env.get(RELAUNCH_QUEUE_URL) or None,
            prices_json=env.get(PRICES) or None,
            max_image_bytes=_whole(env, MAX_IMAGE_BYTES, 50 * 1024 * 1024),
            batch_settle_seconds=_whole(env, BATCH_SETTLE_SECONDS, 120),
            batch_max_images=_whole(env, BATCH_MAX_IMAGES, 5000),
            inference_instance_types=tuple(
                t.strip()
                for t in (env.get(INFERENCE_INSTANCE_TYPE) or "ml.g4dn.xlarge").split(",")
                if t.strip()
            ),
            inference_max_runtime_s=_whole(env, INFERENCE_MAX_RUNTIME_S, 3600),
            inference_max_wait_s=_whole(env, INFERENCE_MAX_WAIT_S, 0) or None,
            inference_max_attempts=_whole(env, INFERENCE_MAX_ATTEMPTS, 5),
            inference_volume_gb=_whole(env, INFERENCE_VOLUME_GB, 50),
            region=env.get(REGION) or "us-east-1",
            spot_market_emulated=spot_market == "emulated",
        )


def _whole(env: Mapping[str, str], name: str, default: int) -> int:
    """A non-negative whole number from ``env[name]`` (``default`` when unset or empty)."""
    text = env.get(name) or ""
    if not text:
        return default
    try:
        value = int(text)
    except ValueError as e:
        raise SettingsError(f"{name} must be a whole number, got {text!r}") from e
    if value < 0:
        raise SettingsError(f"{name} must not be negative, got {value}")
    return value
