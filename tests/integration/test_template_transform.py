"""The SAM transform itself accepts the template: what `sam build`/`sam deploy` would expand.

cfn-lint checks SAM resources against a schema only; the translator is what CloudFormation runs,
so a misspelt event-source property fails here as it would at deploy time.
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest

from tests.integration.test_template import RAW


class _NoManagedPolicies:
    """The translator asks IAM for AWS managed-policy ARNs only when a template names them by name."""

    def load(self) -> dict[str, str]:
        return {}


@pytest.fixture
def transformed(aws_env: None) -> dict[str, Any]:
    from samtranslator.translator.transform import transform

    image = "123456789012.dkr.ecr.eu-west-3.amazonaws.com/spotline:1.0.0"
    packaged = _packaged(copy.deepcopy(RAW))
    return transform(packaged, {"ImageUri": image, "AWS::Region": "eu-west-3"}, _NoManagedPolicies())  # type: ignore[arg-type]


def _packaged(node: Any) -> Any:
    """The template as `sam package` uploads it: local CodeUri folders become S3 objects."""
    if isinstance(node, dict):
        return {
            k: ("s3://spotline-artifacts/functions.zip" if k == "CodeUri" else _packaged(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_packaged(v) for v in node]
    return node


def test_transform_expands_every_function_and_event_source(transformed: dict[str, Any]) -> None:
    kinds = Counter(r["Type"] for r in transformed["Resources"].values())
    assert kinds["AWS::Lambda::Function"] == 8
    assert "AWS::Serverless::Function" not in kinds
    mappings = [
        r["Properties"]
        for r in transformed["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    ]
    assert len(mappings) == 2
    assert all(m["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for m in mappings)


def test_async_functions_get_their_failure_destination(transformed: dict[str, Any]) -> None:
    configs = [
        r["Properties"]
        for r in transformed["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventInvokeConfig"
    ]
    assert configs
    for config in configs:
        assert config["DestinationConfig"]["OnFailure"]["Destination"]
