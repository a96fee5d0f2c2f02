from __future__ import annotations

import pytest

from spotline.domain.instances import has_local_storage


@pytest.mark.parametrize(
    "instance_type",
    [
        "ml.g4dn.xlarge",
        "ml.g5.2xlarge",
        "ml.p3dn.24xlarge",
        "ml.p4d.24xlarge",
        "ml.p4de.24xlarge",
        "ml.p5.48xlarge",
        "ml.m5d.large",
        "ml.g6e.xlarge",
        "ml.trn1.32xlarge",
    ],
)
def test_types_with_local_nvme_storage(instance_type: str) -> None:
    assert has_local_storage(instance_type)


@pytest.mark.parametrize(
    "instance_type", ["ml.p3.2xlarge", "ml.p2.xlarge", "ml.m5.xlarge", "ml.c5n.xlarge", "ml.c5.2xlarge"]
)
def test_types_with_ebs_only(instance_type: str) -> None:
    assert not has_local_storage(instance_type)
