"""The local stack's resources are template.yaml's: key schema and index, patterns, redrives, settings."""

from __future__ import annotations

import json

import pytest

from spotline_local.cli.main import main
from spotline_local.stack import LOCAL_IMAGE_URI
from spotline_local.template import Resolver, find_template, load_template
from tests.e2e.conftest import E2E, TrainedRun

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def resolver(e2e: E2E) -> Resolver:
    return Resolver(
        load_template(find_template()),
        e2e.stack.options.stack_name,
        e2e.stack.moto.endpoint,
        {
            "ImageUri": LOCAL_IMAGE_URI,
            # the images the stack's images file maps (the example's) are the ones it allows
            "AllowedImages": ",".join(e2e.stack.options.images.allowed_repositories()),
        },
    )


def test_the_ledger_table_has_the_template_keys_and_index(e2e: E2E, resolver: Resolver) -> None:
    props = resolver.resolve(resolver.resources["LedgerTable"]["Properties"])
    table = e2e.client("dynamodb").describe_table(TableName=e2e.stack.table)["Table"]
    assert table["KeySchema"] == props["KeySchema"]
    assert {(i["IndexName"], json.dumps(i["KeySchema"])) for i in table["GlobalSecondaryIndexes"]} == {
        (i["IndexName"], json.dumps(i["KeySchema"])) for i in props["GlobalSecondaryIndexes"]
    }


def test_rules_carry_the_template_event_patterns(e2e: E2E, resolver: Resolver) -> None:
    events = e2e.client("events")
    for logical_id, resource in resolver.resources.items():
        props = resource.get("Properties", {})
        if resource["Type"] != "AWS::Events::Rule" or "EventPattern" not in props:
            continue
        rule = events.describe_rule(Name=resolver.physical_name(logical_id))
        assert json.loads(rule["EventPattern"]) == resolver.resolve(props["EventPattern"]), logical_id


def test_queues_keep_their_redrive_and_the_functions_their_environment(e2e: E2E, resolver: Resolver) -> None:
    sqs = e2e.client("sqs")
    for logical_id in ("ImageEventsQueue", "RelaunchQueue"):
        props = resolver.resolve(resolver.resources[logical_id]["Properties"])
        attributes = sqs.get_queue_attributes(
            QueueUrl=e2e.stack.provisioned.queues[logical_id], AttributeNames=["All"]
        )
        redrive = json.loads(attributes["Attributes"]["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == props["RedrivePolicy"]["deadLetterTargetArn"]
        assert int(redrive["maxReceiveCount"]) == props["RedrivePolicy"]["maxReceiveCount"]
        assert attributes["Attributes"]["VisibilityTimeout"] == str(props["VisibilityTimeout"])
    globals_env = resolver.resolve(resolver.template["Globals"]["Function"]["Environment"]["Variables"])
    assert e2e.stack.function_env == {k: str(v) for k, v in globals_env.items()}


def test_the_cli_finds_a_deployed_stack_by_its_outputs(
    e2e: E2E, trained_run: TrainedRun, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stack "deployed" in the emulated account: the CLI reads its names from CloudFormation outputs."""
    template = {
        "Resources": {"Marker": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {
            "DropBucketName": {"Value": e2e.bucket},
            "LedgerTableName": {"Value": e2e.stack.table},
            "AlertTopicArn": {"Value": e2e.stack.topic_arn},
        },
    }
    e2e.client("cloudformation").create_stack(
        StackName="spotline-deployed", TemplateBody=json.dumps(template)
    )
    assert main(["status", "--stack", "spotline-deployed"]) == 0
    assert trained_run.run_id in capsys.readouterr().out
    assert main(["status", "--stack", "no-such-stack"]) == 2
    assert capsys.readouterr().err.startswith("spotline: error: cannot read stack 'no-such-stack'")
