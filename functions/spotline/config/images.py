"""Container images a config may name, and whether the deployment allows one.

An image is an ECR URI (``<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>`` or
``@sha256:<digest>``). The deployment allows images by ECR repository ARN, with ``*`` standing for
any run of characters as in IAM (``arn:aws:ecr:eu-west-3:123456789012:repository/rail-*``, or
``...:repository/*`` for every repository of one account and region): the same patterns are the
execution role's ``ecr:BatchGetImage`` resources, so an image the config check lets through is one
the job can pull, and no other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

ECR_IMAGE_URI = (
    r"(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/"
    r"(?P<repository>[a-z0-9][a-z0-9._/-]*)(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})"
)
# An allowed-images entry: an ECR repository ARN; '*' only in the region and the repository name.
ALLOWED_IMAGE_PATTERN = r"arn:aws[a-z-]*:ecr:([a-z0-9-]+|\*):\d{12}:repository/[a-z0-9*][a-z0-9._/*-]*"
_URI = re.compile(ECR_IMAGE_URI)
_PARTITION = re.compile(r"^arn:aws[a-z-]*:")


def repository_arn(image_uri: str, partition: str = "aws") -> str | None:
    """The ECR repository ARN of an image URI (None if it is not an ECR image URI)."""
    match = _URI.fullmatch(image_uri)
    if match is None:
        return None
    account, region, repository = match.group("account", "region", "repository")
    return f"arn:{partition}:ecr:{region}:{account}:repository/{repository}"


def _glob(pattern: str) -> re.Pattern[str]:
    """IAM's wildcard: ``*`` is any run of characters (``/`` included), everything else literal."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def image_allowed(image_uri: str, allowed: Iterable[str]) -> bool:
    """Whether the repository of ``image_uri`` matches one of the ``allowed`` repository ARN patterns."""
    arn = repository_arn(image_uri)
    if arn is None:
        return False
    bare = _PARTITION.sub("", arn)
    return any(_glob(_PARTITION.sub("", pattern)).fullmatch(bare) for pattern in allowed)
