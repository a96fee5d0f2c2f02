"""A batch without ``_job.yaml`` must read as "no job file" on AWS, where S3's answer depends on IAM.

S3 answers GetObject on a missing key with 404 NoSuchKey only to callers allowed s3:ListBucket on
the bucket, and with 403 AccessDenied to the others. The model resolver treats 403 as the error it
is (a job file it may not read must not silently fall back to the promoted model), so the
functions that resolve models need ListBucket, without an s3:prefix condition (GetObject has none).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from spotline.adapters.drop_bucket import DropBucket
from spotline.domain.settings import Settings
from spotline.inference.model_resolver import ModelResolver
from spotline.ledger.models import Models
from spotline.ledger.records import Promotion
from spotline.ledger.runs import RunLedger
from spotline.ledger.table import LedgerTable
from spotline_local.template import load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
PROMOTED = Promotion(run_id="rail-0123456789ab", model_artifact="s3://drop/runs/rail/output/j/model.tar.gz")


def _statements(role_id: str) -> list[dict[str, Any]]:
    role = load_template(TEMPLATE)["Resources"][role_id]["Properties"]
    return [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]


@pytest.mark.parametrize("role_id", ["ImageIntakeFunctionRole", "BatchCloserFunctionRole"])
def test_roles_that_resolve_models_may_list_the_drop_bucket(role_id: str) -> None:
    listing = [
        s
        for s in _statements(role_id)
        if s["Effect"] == "Allow"
        and "s3:ListBucket" in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        and s["Resource"] == {"Fn::GetAtt": ["DropBucket", "Arn"]}
    ]
    assert listing, f"{role_id}: a missing _job.yaml would read as 403 AccessDenied"
    assert all("Condition" not in s for s in listing)


class _S3:
    def __init__(self, code: str, status: int) -> None:
        self.code, self.status = code, status

    def get_object(self, **request: Any) -> Any:
        error = {
            "Error": {"Code": self.code, "Message": "x"},
            "ResponseMetadata": {"HTTPStatusCode": self.status},
        }
        raise ClientError(error, "GetObject")


def _resolver(s3: _S3) -> ModelResolver:
    settings = Settings(
        bucket="drop",
        table="ledger",
        topic_arn="arn:aws:sns:eu-west-3:123456789012:t",
        image_uri="i",
        execution_role_arn="arn:aws:iam::123456789012:role/r",
        job_prefix="spotline",
    )
    table = LedgerTable("ledger", client=object())
    return ModelResolver(
        settings, ledger=RunLedger(table), models=_PromotedOnly(table), bucket=DropBucket(settings, s3)
    )


class _PromotedOnly(Models):
    """The ledger's promoted model, without a table behind it."""

    def promoted(self) -> Promotion:
        return PROMOTED


def test_a_missing_job_file_falls_back_to_the_promoted_model() -> None:
    choice = _resolver(_S3("NoSuchKey", 404)).resolve("rail-2026-11-27")
    assert choice is not None and (choice.source, choice.uri) == ("promoted", PROMOTED.model_artifact)


def test_a_job_file_that_cannot_be_read_is_an_error_not_a_fallback() -> None:
    with pytest.raises(ClientError, match="AccessDenied"):
        _resolver(_S3("AccessDenied", 403)).resolve("rail-2026-11-27")
