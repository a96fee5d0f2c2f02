"""Deploy parameters refuse values that would widen what spotline may touch."""

from __future__ import annotations

import re

import pytest

from tests.integration.test_template import RAW


@pytest.mark.parametrize("value", ["*", "data-*", "arn:aws:s3:::x", "Bad_Bucket", "a"])
def test_extra_data_buckets_take_bucket_names_only(value: str) -> None:
    pattern = RAW["Parameters"]["ExtraDataBuckets"]["AllowedPattern"]
    assert not re.fullmatch(pattern, value)


@pytest.mark.parametrize("value", ["", "shared-datasets", "team.rail.images-2026"])
def test_extra_data_buckets_accept_real_names_and_nothing(value: str) -> None:
    pattern = RAW["Parameters"]["ExtraDataBuckets"]["AllowedPattern"]
    assert re.fullmatch(pattern, value)


@pytest.mark.parametrize(
    "value",
    [
        "*",
        "arn:aws:ecr:eu-west-3:*:repository/rail",  # any account
        "arn:aws:ecr:eu-west-3:123456789012:*",  # not a repository
        "arn:aws:s3:::bucket",
        "123456789012.dkr.ecr.eu-west-3.amazonaws.com/rail:1",  # an image URI, not a repository ARN
    ],
)
def test_allowed_images_take_ecr_repository_arns_of_one_account(value: str) -> None:
    assert not re.fullmatch(RAW["Parameters"]["AllowedImages"]["AllowedPattern"], value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "arn:aws:ecr:eu-west-3:123456789012:repository/rail-*",
        "arn:aws:ecr:*:123456789012:repository/team/x",
    ],
)
def test_allowed_images_accept_repository_patterns_and_nothing(value: str) -> None:
    assert re.fullmatch(RAW["Parameters"]["AllowedImages"]["AllowedPattern"], value)
