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
