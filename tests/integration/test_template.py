"""template.yaml: the security properties and wiring that the cloud deployment relies on.

The template is read with cfn-lint's decoder and resolved by a small evaluator of the intrinsics it
uses (Ref, GetAtt, Sub, Join, Split, Select, If and conditions) for given parameter values, so each
test asserts on what CloudFormation would deploy. Resources resolve to tokens: ``Ref X`` is ``<X>``
and ``GetAtt X.Arn`` is ``<X.Arn>``, except the drop bucket, which gets a real name so that rule
patterns can be matched (with moto's EventBridge matcher) against the sample events in events/.
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from spotline.domain import settings as settings_module
from spotline.domain.layout import SPOTLINE_PREFIXES, USER_PREFIXES
from spotline.domain.settings import Settings
from spotline_local.template import load_template
from tests.support.events import load_event, s3_object_created

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
ACCOUNT = "123456789012"
REGION = "eu-west-3"
BUCKET = "spotline-drop-123456789012"
IMAGE_URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/spotline:1.0.0"
NO_VALUE = object()
WRITE_PREFIXES = SPOTLINE_PREFIXES

RAW = load_template(TEMPLATE)


@dataclass
class Stack:
    """The template resolved for one set of parameter values."""

    params: dict[str, Any] = field(default_factory=dict)
    template: dict[str, Any] = field(default_factory=lambda: RAW)

    def __post_init__(self) -> None:
        values: dict[str, Any] = {}
        for name, spec in self.template["Parameters"].items():
            value = self.params.get(name, spec.get("Default"))
            assert value is not None, f"parameter {name} needs a value"
            if spec["Type"] == "CommaDelimitedList" and isinstance(value, str):
                value = [v.strip() for v in value.split(",")]
            values[name] = value if isinstance(value, list) else str(value)
        self.values = values

    # -- intrinsics -------------------------------------------------------------------------------
    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": REGION,
            "AWS::Partition": "aws",
            "AWS::StackName": "spotline",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.values:
            return self.values[name]
        assert name in self.template["Resources"], f"Ref to unknown {name}"
        return BUCKET if name == "DropBucket" else f"<{name}>"

    def get_att(self, logical_id: str, attribute: str) -> str:
        assert logical_id in self.template["Resources"], f"GetAtt of unknown {logical_id}"
        if (logical_id, attribute) == ("DropBucket", "Arn"):
            return f"arn:aws:s3:::{BUCKET}"
        return f"<{logical_id}.{attribute}>"

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def _sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return self.get_att(logical_id, attribute)
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (self.resolve(v) for v in value) if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical_id, attribute)
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return self._sub(arg, {})
                return self._sub(arg[0], {k: self.resolve(v) for k, v in arg[1].items()})
            if key == "Fn::Join":
                return arg[0].join(str(v) for v in self.resolve(arg[1]))
            if key == "Fn::Split":
                return str(self.resolve(arg[1])).split(arg[0])
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if key == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                return self.resolve(arg[0]) == self.resolve(arg[1])
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if key == "Fn::Or":
                return any(self.resolve(a) for a in arg)
            if key == "Condition":
                return self.condition(arg)
        return {k: r for k, r in ((k, self.resolve(v)) for k, v in value.items()) if r is not NO_VALUE}

    # -- resources --------------------------------------------------------------------------------
    def included(self, logical_id: str) -> bool:
        condition = self.template["Resources"][logical_id].get("Condition")
        return condition is None or self.condition(condition)

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        """Included resources of ``kind``, properties resolved (functions with Globals merged in)."""
        out = {}
        for logical_id, resource in self.template["Resources"].items():
            if resource["Type"] != kind or not self.included(logical_id):
                continue
            props = dict(resource.get("Properties", {}))
            if kind == "AWS::Serverless::Function":
                for name, global_value in self.template.get("Globals", {}).get("Function", {}).items():
                    if name == "Environment":
                        merged = dict(global_value["Variables"])
                        merged.update(props.get("Environment", {}).get("Variables", {}))
                        props["Environment"] = {"Variables": merged}
                    else:
                        props.setdefault(name, global_value)
            out[logical_id] = self.resolve(props)
        return out

    def resource(self, logical_id: str) -> dict[str, Any]:
        kind = self.template["Resources"][logical_id]["Type"]
        return self.resources(kind)[logical_id]

    def statements(self, role_id: str) -> list[dict[str, Any]]:
        """Every statement granted to ``role_id``: inline policies and the template's managed policies."""
        role = self.resource(role_id)
        found = [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
        managed = self.resources("AWS::IAM::ManagedPolicy")
        for arn in role.get("ManagedPolicyArns", []):
            logical_id = arn.strip("<>")
            assert logical_id in managed, f"{role_id} attaches {arn}, which is not defined here"
            found += managed[logical_id]["PolicyDocument"]["Statement"]
        return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _id(token: str) -> str:
    """``<X.Arn>`` or ``<X>`` -> ``X``."""
    assert token.startswith("<") and token.endswith(">"), token
    return token[1:-1].split(".", 1)[0]


def _allows(statements: list[dict[str, Any]], action: str, resource: str) -> bool:
    for s in statements:
        if s["Effect"] != "Allow":
            continue
        if action in _as_list(s["Action"]) and any(
            re.fullmatch(re.escape(r).replace(r"\*", ".*"), resource) for r in _as_list(s["Resource"])
        ):
            return True
    return False


@pytest.fixture(scope="module")
def stack() -> Stack:
    return Stack({"ImageUri": IMAGE_URI})


@pytest.fixture(scope="module")
def functions(stack: Stack) -> dict[str, dict[str, Any]]:
    return stack.resources("AWS::Serverless::Function")


def _function_roles(stack: Stack) -> dict[str, str]:
    return {name: _id(fn["Role"]) for name, fn in stack.resources("AWS::Serverless::Function").items()}


# -------------------------------------------------------------------------------- the drop bucket


def test_drop_bucket_is_private_encrypted_versioned_and_sends_events_to_eventbridge(stack: Stack) -> None:
    bucket = stack.resource("DropBucket")
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    (sse,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert sse["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": "<SpotlineKey.Arn>",
    }
    assert sse["BucketKeyEnabled"] is True
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    rules = bucket["LifecycleConfiguration"]["Rules"]
    assert any(r["Status"] == "Enabled" and "AbortIncompleteMultipartUpload" in r for r in rules)
    assert any(
        r["Status"] == "Enabled" and r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays")
        for r in rules
    )
    assert bucket["LoggingConfiguration"]["DestinationBucketName"] == "<AccessLogBucket>"


@pytest.mark.parametrize("bucket_id", ["DropBucket", "AccessLogBucket"])
def test_every_bucket_refuses_plain_http(stack: Stack, bucket_id: str) -> None:
    policies = [
        p for p in stack.resources("AWS::S3::BucketPolicy").values() if p["Bucket"] == stack.ref(bucket_id)
    ]
    arn = stack.get_att(bucket_id, "Arn")
    denies = [
        s
        for p in policies
        for s in p["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny"
        and s["Principal"] == "*"
        and s["Action"] == "s3:*"
        and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert denies, f"{bucket_id} has no TLS-only statement"
    assert {arn, f"{arn}/*"} <= set(_as_list(denies[0]["Resource"]))


def test_access_log_bucket_takes_only_the_drop_buckets_logs(stack: Stack) -> None:
    (policy,) = [
        p for p in stack.resources("AWS::S3::BucketPolicy").values() if p["Bucket"] == "<AccessLogBucket>"
    ]
    (allow,) = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert allow["Condition"]["ArnLike"] == {"aws:SourceArn": f"arn:aws:s3:::{BUCKET}"}
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}


# -------------------------------------------------------------------------------- encryption


def test_a_key_with_rotation_is_created_only_when_none_is_given() -> None:
    created = Stack({"ImageUri": IMAGE_URI})
    assert created.resource("SpotlineKey")["EnableKeyRotation"] is True
    given_arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    given = Stack({"ImageUri": IMAGE_URI, "KmsKeyArn": given_arn})
    assert "SpotlineKey" not in given.resources("AWS::KMS::Key")
    assert given.resource("LedgerTable")["SSESpecification"]["KMSMasterKeyId"] == given_arn
    assert given.resource("AlertTopic")["KmsMasterKeyId"] == given_arn
    for function in given.resources("AWS::Serverless::Function").values():
        assert function["Environment"]["Variables"]["SPOTLINE_KMS_KEY_ARN"] == given_arn


def test_every_store_is_encrypted_with_the_stacks_key(stack: Stack) -> None:
    key = "<SpotlineKey.Arn>"
    for name, queue in stack.resources("AWS::SQS::Queue").items():
        assert queue.get("KmsMasterKeyId") == key, f"queue {name} is not encrypted with the key"
    for name, topic in stack.resources("AWS::SNS::Topic").items():
        assert topic.get("KmsMasterKeyId") == key, name
    for name, group in stack.resources("AWS::Logs::LogGroup").items():
        assert group.get("KmsKeyId") == key, name
    for name, function in stack.resources("AWS::Serverless::Function").items():
        assert function.get("KmsKeyArn") == key, f"{name}'s environment is not encrypted with the key"
    table = stack.resource("LedgerTable")
    assert table["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": key}


def test_key_policy_lets_eventbridge_cloudwatch_and_logs_use_the_key(stack: Stack) -> None:
    statements = stack.resource("SpotlineKey")["KeyPolicy"]["Statement"]
    services = {s["Principal"].get("Service") for s in statements if s["Effect"] == "Allow"}
    assert {"events.amazonaws.com", "cloudwatch.amazonaws.com", f"logs.{REGION}.amazonaws.com"} <= services
    assert not any(s["Principal"] == "*" or s["Principal"] == {"AWS": "*"} for s in statements)


@pytest.mark.parametrize(
    ("service", "source_arn"),
    [
        ("events.amazonaws.com", f"arn:aws:events:{REGION}:{ACCOUNT}:rule/*"),
        ("cloudwatch.amazonaws.com", f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:*"),
    ],
)
def test_key_policy_grants_services_only_for_this_accounts_resources(
    stack: Stack, service: str, source_arn: str
) -> None:
    """No confused deputy: EventBridge and CloudWatch use the key only for this account's rules and alarms."""
    statements = stack.resource("SpotlineKey")["KeyPolicy"]["Statement"]
    (grant,) = [s for s in statements if s["Principal"].get("Service") == service]
    assert grant["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": source_arn},
    }
    for s in statements:  # every service grant is conditioned (logs: its encryption context)
        if "Service" in s["Principal"]:
            assert s.get("Condition"), s["Sid"]


def test_every_queue_refuses_plain_http(stack: Stack) -> None:
    """Each queue has exactly one policy (SQS keeps one), and it denies every non-TLS request."""
    queues = stack.resources("AWS::SQS::Queue")
    policies = list(stack.resources("AWS::SQS::QueuePolicy").values())
    for queue_id in queues:
        (policy,) = [p for p in policies if f"<{queue_id}>" in p["Queues"]]
        denies = [
            s
            for s in policy["PolicyDocument"]["Statement"]
            if s["Effect"] == "Deny"
            and s["Principal"] == "*"
            and s["Action"] == "sqs:*"
            and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert denies, f"{queue_id} accepts plain HTTP"
        assert f"<{queue_id}.Arn>" in _as_list(denies[0]["Resource"]), queue_id


# -------------------------------------------------------------------------------- ledger and topic


def test_ledger_table_is_on_demand_recoverable_and_protected(stack: Stack) -> None:
    table = stack.resource("LedgerTable")
    assert RAW["Resources"]["LedgerTable"]["DeletionPolicy"] == "Retain"
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["DeletionProtectionEnabled"] is True


def test_ledger_schema_is_the_one_the_tests_create_in_moto(stack: Stack, aws_env: None) -> None:
    """The key schema and index the code is tested against (tests/conftest.py) are the ones deployed."""
    import boto3
    from moto import mock_aws

    from tests.support.aws_account import create_ledger_table

    table = stack.resource("LedgerTable")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_ledger_table(dynamodb, "ledger")
        described = dynamodb.describe_table(TableName="ledger")["Table"]
    by_name = lambda items: sorted(items, key=lambda i: json.dumps(i, sort_keys=True))  # noqa: E731
    assert by_name(described["AttributeDefinitions"]) == by_name(table["AttributeDefinitions"])
    assert described["KeySchema"] == table["KeySchema"]
    ((index,), (declared,)) = described["GlobalSecondaryIndexes"], table["GlobalSecondaryIndexes"]
    assert (index["IndexName"], index["KeySchema"], index["Projection"]) == (
        declared["IndexName"],
        declared["KeySchema"],
        declared["Projection"],
    )
    assert declared["IndexName"] == "gsi1"


def test_alert_topic_refuses_plain_http_and_takes_this_accounts_alarms(stack: Stack) -> None:
    (policy,) = stack.resources("AWS::SNS::TopicPolicy").values()
    assert policy["Topics"] == ["<AlertTopic>"]
    statements = policy["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )
    (alarms,) = [s for s in statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert alarms["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


def test_email_subscription_exists_only_when_an_address_is_given() -> None:
    assert not Stack({"ImageUri": IMAGE_URI}).resources("AWS::SNS::Subscription")
    with_email = Stack({"ImageUri": IMAGE_URI, "AlertEmail": "rail-team@example.com"})
    (subscription,) = with_email.resources("AWS::SNS::Subscription").values()
    assert subscription == {
        "TopicArn": "<AlertTopic>",
        "Protocol": "email",
        "Endpoint": "rail-team@example.com",
    }


# -------------------------------------------------------------------------------- rules


def test_every_rule_target_retries_then_dead_letters_to_a_queue_that_accepts_it(stack: Stack) -> None:
    rules = stack.resources("AWS::Events::Rule")
    assert {"ConfigCreatedRule", "ImageCreatedRule", "JobStateRule", "TuningStateRule"} <= set(rules)
    policies = stack.resources("AWS::SQS::QueuePolicy").values()
    for name, rule in rules.items():
        assert rule["Targets"], name
        for target in rule["Targets"]:
            retry = target["RetryPolicy"]
            assert retry["MaximumRetryAttempts"] >= 1 and retry["MaximumEventAgeInSeconds"] >= 60, name
            dlq = target["DeadLetterConfig"]["Arn"]
            assert stack.template["Resources"][_id(dlq)]["Type"] == "AWS::SQS::Queue"
            assert _queue_accepts_rule(policies, _id(dlq), name), f"{_id(dlq)} refuses dead letters of {name}"


def _queue_accepts_rule(policies: Any, queue_id: str, rule_id: str) -> bool:
    for policy in policies:
        if f"<{queue_id}>" not in policy["Queues"]:
            continue
        for s in policy["PolicyDocument"]["Statement"]:
            if (
                s["Effect"] == "Allow"
                and s["Principal"] == {"Service": "events.amazonaws.com"}
                and "sqs:SendMessage" in _as_list(s["Action"])
                and s["Resource"] == f"<{queue_id}.Arn>"
                and f"<{rule_id}.Arn>" in _as_list(s["Condition"]["ArnEquals"]["aws:SourceArn"])
            ):
                return True
    return False


def test_rule_targets_are_allowed_to_receive_from_their_rule(stack: Stack) -> None:
    permissions = stack.resources("AWS::Lambda::Permission").values()
    policies = stack.resources("AWS::SQS::QueuePolicy").values()
    for name, rule in stack.resources("AWS::Events::Rule").items():
        for target in rule["Targets"]:
            target_id = _id(target["Arn"])
            kind = stack.template["Resources"][target_id]["Type"]
            if kind == "AWS::SQS::Queue":
                assert _queue_accepts_rule(policies, target_id, name), f"{target_id} refuses {name}"
            else:
                assert kind == "AWS::Serverless::Function"
                assert any(
                    p["FunctionName"] == f"<{target_id}>"
                    and p["Principal"] == "events.amazonaws.com"
                    and p["Action"] == "lambda:InvokeFunction"
                    and p["SourceArn"] == f"<{name}.Arn>"
                    for p in permissions
                ), f"{target_id} does not let {name} invoke it"


def test_rules_route_to_the_documented_targets(stack: Stack) -> None:
    rules = stack.resources("AWS::Events::Rule")
    targets = {name: [_id(t["Arn"]) for t in rule["Targets"]] for name, rule in rules.items()}
    assert targets["ConfigCreatedRule"] == ["LaunchFunction"]
    assert targets["ConfigDeletedRule"] == ["ConfigDeletedFunction"]
    assert targets["ImageCreatedRule"] == ["ImageEventsQueue"]
    assert targets["JobStateRule"] == ["JobStateFunction"]
    assert targets["TuningStateRule"] == ["TuningStateFunction"]
    schedules = {
        r["ScheduleExpression"]: [_id(t["Arn"]) for t in r["Targets"]]
        for r in rules.values()
        if r.get("ScheduleExpression")
    }
    assert schedules == {"rate(1 minute)": ["BatchCloserFunction"], "rate(5 minutes)": ["RunWatchFunction"]}
    assert all(r.get("EventBusName", "default") == "default" for r in rules.values())


def _matches(stack: Stack, rule_id: str, event: dict[str, Any]) -> bool:
    from moto.events.models import EventPattern

    pattern = stack.resource(rule_id)["EventPattern"]
    return bool(EventPattern.load(json.dumps(pattern)).matches_event(event))


@pytest.mark.parametrize(
    "key",
    [
        "configs/rail-detector.yaml",
        "configs/team a/rail v2.yml",
        "configs/défauts.yaml",
        "configs/UPPER.YAML",
        "configs/x.Yaml",
        "configs/x.yMl",
        "configs/deep/er/x.YaML",
    ],
)
def test_config_rule_matches_yaml_created_under_configs_in_any_letter_case(stack: Stack, key: str) -> None:
    """What the launch function takes as a config (``layout.is_config_key``), the rule delivers."""
    from spotline.domain.layout import is_config_key

    assert is_config_key(key)
    assert _matches(stack, "ConfigCreatedRule", s3_object_created(BUCKET, key, etag="e1", size=10))
    assert _matches(stack, "ConfigCreatedRule", load_event("s3_config_created"))


@pytest.mark.parametrize(
    "key", ["runs/r-1/config.yaml", "inference/b1/config.yaml", "datasets/a.yml", "results/b/x.yaml"]
)
def test_config_rule_ignores_objects_outside_configs(stack: Stack, key: str) -> None:
    """Nothing spotline writes (runs/, results/) can reach the launch function."""
    assert not _matches(stack, "ConfigCreatedRule", s3_object_created(BUCKET, key, etag="e1", size=10))


def test_config_deleted_rule_routes_deletions_under_configs_only(stack: Stack) -> None:
    from tests.support.events import s3_object_deleted

    for key in ("configs/rail.yaml", "configs/team/Rail.YML"):
        assert _matches(stack, "ConfigDeletedRule", s3_object_deleted(BUCKET, key, version_id="v1"))
        assert not _matches(stack, "ConfigCreatedRule", s3_object_deleted(BUCKET, key, version_id="v1"))
        assert not _matches(stack, "ConfigDeletedRule", s3_object_created(BUCKET, key, etag="e", size=1))
    assert _matches(stack, "ConfigDeletedRule", load_event("s3_config_deleted"))
    for key in ("runs/r/config.yaml", "inference/b/_READY"):
        assert not _matches(stack, "ConfigDeletedRule", s3_object_deleted(BUCKET, key, version_id="v1"))
    elsewhere = s3_object_deleted("someone-else", "configs/rail.yaml", version_id="v1")
    assert not _matches(stack, "ConfigDeletedRule", elsewhere)


def test_config_and_image_rules_ignore_other_buckets_and_event_types(stack: Stack) -> None:
    for rule_id, key in (("ConfigCreatedRule", "configs/a.yaml"), ("ImageCreatedRule", "inference/b1/1.jpg")):
        assert _matches(stack, rule_id, s3_object_created(BUCKET, key, etag="e1", size=10))
        assert not _matches(stack, rule_id, s3_object_created("someone-else", key, etag="e1", size=10))
        deleted = s3_object_created(BUCKET, key, etag="e1", size=10)
        deleted["detail-type"] = "Object Deleted"
        assert not _matches(stack, rule_id, deleted)


def test_image_rule_matches_only_objects_under_inference(stack: Stack) -> None:
    assert _matches(
        stack, "ImageCreatedRule", s3_object_created(BUCKET, "inference/line 4/IMG 001.jpg", etag="e", size=9)
    )
    for key in ("configs/a.yaml", "results/b1/summary.json", "runs/r/inference/x.jpg"):
        assert not _matches(stack, "ImageCreatedRule", s3_object_created(BUCKET, key, etag="e", size=9))


@pytest.mark.parametrize(
    "sample",
    [
        "sagemaker_job_completed",
        "sagemaker_job_failed_capacity",
        "sagemaker_job_failed_user_error",
        "sagemaker_job_stopped_max_wait",
    ],
)
def test_job_state_rule_matches_spotline_jobs_that_ended(stack: Stack, sample: str) -> None:
    assert _matches(stack, "JobStateRule", load_event(sample))


def test_job_state_rule_ignores_running_jobs_and_other_peoples_jobs(stack: Stack) -> None:
    running = load_event("sagemaker_job_completed")
    running["detail"]["TrainingJobStatus"] = "InProgress"
    assert not _matches(stack, "JobStateRule", running)
    foreign = load_event("sagemaker_job_completed")
    foreign["detail"]["TrainingJobName"] = "spotlineother-run-a01"
    assert not _matches(stack, "JobStateRule", foreign)
    renamed = Stack({"ImageUri": IMAGE_URI, "JobNamePrefix": "acme"})
    ours = load_event("sagemaker_job_completed")
    ours["detail"]["TrainingJobName"] = "acme-rail-0123456789ab-a01"
    assert _matches(renamed, "JobStateRule", ours)
    assert not _matches(renamed, "JobStateRule", load_event("sagemaker_job_completed"))


@pytest.mark.parametrize(
    ("tags", "seen"),
    [
        ({"spotline:run-id": "rail-0123456789ab", "spotline:attempt": "1"}, True),
        ({"spotline:adopt": "true", "team": "rail"}, True),
        ({"spotline:adopt": "false"}, False),
        ({"team": "rail"}, False),
        ({}, False),
    ],
)
def test_job_state_rule_sees_jobs_of_any_name_that_carry_spotline_tags(
    stack: Stack, tags: dict[str, str], seen: bool
) -> None:
    event = load_event("sagemaker_job_completed")
    event["detail"]["TrainingJobName"] = "rail-legacy-2026-11-27-01-02-03-456"  # the SDK's name
    event["detail"]["Tags"] = tags
    assert _matches(stack, "JobStateRule", event) is seen
    event["detail"]["TrainingJobStatus"] = "InProgress"
    assert not _matches(stack, "JobStateRule", event)


def test_job_state_rule_hears_the_trials_that_spotlines_tuning_jobs_start(stack: Stack) -> None:
    """The tuner names a trial <tuning job name>-<NNN>-<8 hex>: it carries the prefix."""
    trial = load_event("sagemaker_job_completed")
    tuning_job = load_event("sagemaker_tuning_job_completed")["detail"]["HyperParameterTuningJobName"]
    trial["detail"]["TrainingJobName"] = f"{tuning_job}-003-0a1b2c3d"
    assert _matches(stack, "JobStateRule", trial)
    assert not _matches(stack, "TuningStateRule", trial)


@pytest.mark.parametrize("status", ["Completed", "Failed", "Stopped"])
def test_tuning_state_rule_matches_spotline_tuning_jobs_that_ended(stack: Stack, status: str) -> None:
    event = load_event("sagemaker_tuning_job_completed")
    event["detail"]["HyperParameterTuningJobStatus"] = status
    assert _matches(stack, "TuningStateRule", event)
    assert not _matches(stack, "JobStateRule", event)


def test_tuning_state_rule_ignores_running_tuning_jobs_and_other_peoples(stack: Stack) -> None:
    for status in ("InProgress", "Stopping"):
        running = load_event("sagemaker_tuning_job_completed")
        running["detail"]["HyperParameterTuningJobStatus"] = status
        assert not _matches(stack, "TuningStateRule", running)
    foreign = load_event("sagemaker_tuning_job_completed")
    foreign["detail"]["HyperParameterTuningJobName"] = "spotlineother-tune-1a2b3c4d"
    assert not _matches(stack, "TuningStateRule", foreign)
    renamed = Stack({"ImageUri": IMAGE_URI, "JobNamePrefix": "acme"})
    ours = load_event("sagemaker_tuning_job_completed")
    ours["detail"]["HyperParameterTuningJobName"] = "acme-rail-tuning-1a2b3c4d"
    assert _matches(renamed, "TuningStateRule", ours)
    assert not _matches(renamed, "TuningStateRule", load_event("sagemaker_tuning_job_completed"))


# -------------------------------------------------------------------------------- functions


def test_each_handler_file_exists(functions: dict[str, dict[str, Any]]) -> None:
    for name, function in functions.items():
        module, _, attribute = function["Handler"].rpartition(".")
        path = ROOT / function["CodeUri"] / f"{module}.py"
        assert path.is_file(), f"{name}: {path} does not exist"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)} | {
            t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
        }
        assert attribute in defined, f"{name}: {path} defines no {attribute}"


def test_functions_run_on_current_python_arm64_traced_with_their_own_log_group(
    functions: dict[str, dict[str, Any]], stack: Stack
) -> None:
    assert set(functions) == {
        "LaunchFunction",
        "ConfigDeletedFunction",
        "JobStateFunction",
        "TuningStateFunction",
        "RelaunchFunction",
        "ImageIntakeFunction",
        "BatchCloserFunction",
        "RunWatchFunction",
    }
    timeouts = {
        "LaunchFunction": 60,
        "ConfigDeletedFunction": 60,
        "JobStateFunction": 120,
        "TuningStateFunction": 300,  # catches up at most MaxNumberOfTrainingJobs trials, one describe each
        "RelaunchFunction": 120,
        "ImageIntakeFunction": 120,
        "BatchCloserFunction": 300,
        "RunWatchFunction": 60,
    }
    groups = stack.resources("AWS::Logs::LogGroup")
    for name, function in functions.items():
        assert function["Runtime"] == "python3.13" and function["Architectures"] == ["arm64"], name
        assert function["Tracing"] == "Active", name
        assert function["Timeout"] == timeouts[name], name
        assert int(function["ReservedConcurrentExecutions"]) >= 1, name
        group = _id(function["LoggingConfig"]["LogGroup"])
        assert groups[group]["RetentionInDays"] == stack.values["LogRetentionDays"]


def test_every_function_has_somewhere_for_failures_to_go(
    functions: dict[str, dict[str, Any]], stack: Stack
) -> None:
    queues = stack.resources("AWS::SQS::Queue")
    for name, function in functions.items():
        destination = function.get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure")
        sources = [
            e["Properties"]["Queue"] for e in function.get("Events", {}).values() if e["Type"] == "SQS"
        ]
        if destination:
            assert destination["Type"] == "SQS" and _id(destination["Destination"]) in queues, name
        elif sources:
            for source in sources:
                assert "RedrivePolicy" in queues[_id(source)], f"{name}'s source queue has no DLQ"
        else:
            assert "DeadLetterQueue" in function, f"{name} loses its failures"


def test_asynchronously_invoked_functions_retry_twice_then_record_the_failure(
    functions: dict[str, dict[str, Any]], stack: Stack
) -> None:
    invoked_by_rules = {
        _id(t["Arn"])
        for r in stack.resources("AWS::Events::Rule").values()
        for t in r["Targets"]
        if _id(t["Arn"]) in functions
    }
    assert {
        "LaunchFunction",
        "ConfigDeletedFunction",
        "JobStateFunction",
        "TuningStateFunction",
    } <= invoked_by_rules
    scheduled = {
        _id(t["Arn"])
        for r in stack.resources("AWS::Events::Rule").values()
        if r.get("ScheduleExpression")
        for t in r["Targets"]
    }
    assert scheduled == {"BatchCloserFunction", "RunWatchFunction"}
    for name in invoked_by_rules:
        config = functions[name]["EventInvokeConfig"]
        assert config["DestinationConfig"]["OnFailure"]["Type"] == "SQS", name
        if name not in scheduled:  # a failed pulse is retried by the next pulse
            assert config["MaximumRetryAttempts"] == 2, name


def test_sqs_consumers_report_partial_failures_and_queues_outlast_them(
    functions: dict[str, dict[str, Any]], stack: Stack
) -> None:
    queues = stack.resources("AWS::SQS::Queue")
    consumers = {}
    for name, function in functions.items():
        for event in function.get("Events", {}).values():
            if event["Type"] == "SQS":
                props = event["Properties"]
                consumers[_id(props["Queue"])] = (name, props)
                assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"], name
                window = props.get("MaximumBatchingWindowInSeconds", 0)
                assert queues[_id(props["Queue"])]["VisibilityTimeout"] >= 6 * function["Timeout"] + window, (
                    name
                )
    assert consumers["ImageEventsQueue"][0] == "ImageIntakeFunction"
    assert consumers["ImageEventsQueue"][1]["BatchSize"] == 100
    assert consumers["ImageEventsQueue"][1]["MaximumBatchingWindowInSeconds"] == 20
    assert consumers["RelaunchQueue"][0] == "RelaunchFunction"
    for queue_id in consumers:
        assert queues[queue_id]["RedrivePolicy"]["maxReceiveCount"] >= 1


def test_environment_sets_every_setting_and_settings_load_from_it(
    functions: dict[str, dict[str, Any]],
) -> None:
    declared = {
        value
        for name, value in vars(settings_module).items()
        if name.isupper() and str(value).startswith("SPOTLINE_")
    }
    for name, function in functions.items():
        env = function["Environment"]["Variables"]
        assert declared <= set(env), f"{name} lacks {sorted(declared - set(env))}"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Spotline"
        assert env["POWERTOOLS_SERVICE_NAME"] and env["LOG_LEVEL"]
        loaded = Settings.from_env({k: str(v) for k, v in env.items()})
        assert (loaded.bucket, loaded.job_prefix, loaded.event_bus) == (BUCKET, "spotline", "default")
        assert loaded.execution_role_arn == "<ExecutionRole.Arn>"
        assert loaded.extra_data_buckets == frozenset()
        assert loaded.inference_instance_types == ("ml.g4dn.xlarge",)
        assert (loaded.batch_settle_seconds, loaded.batch_max_images) == (120, 5000)
        assert loaded.inference_max_wait_s is None  # 0 in the template: twice the runtime


def test_extra_data_buckets_reach_the_functions_and_the_execution_role() -> None:
    stack = Stack({"ImageUri": IMAGE_URI, "ExtraDataBuckets": "rail-archive,shared-datasets"})
    (function, *_) = stack.resources("AWS::Serverless::Function").values()
    loaded = Settings.from_env({k: str(v) for k, v in function["Environment"]["Variables"].items()})
    assert loaded.extra_data_buckets == {"rail-archive", "shared-datasets"}
    statements = stack.statements("ExecutionRole")
    for bucket in ("rail-archive", "shared-datasets"):
        assert _allows(statements, "s3:GetObject", f"arn:aws:s3:::{bucket}/datasets/x.jpg")
        assert any(
            "s3:ListBucket" in _as_list(s["Action"]) and f"arn:aws:s3:::{bucket}" in _as_list(s["Resource"])
            for s in statements
        )
        assert not _allows(statements, "s3:PutObject", f"arn:aws:s3:::{bucket}/x")
    assert not _allows(
        Stack({"ImageUri": IMAGE_URI}).statements("ExecutionRole"),
        "s3:GetObject",
        "arn:aws:s3:::rail-archive/a",
    )


# -------------------------------------------------------------------------------- IAM


def _all_role_ids(stack: Stack) -> list[str]:
    return list(stack.resources("AWS::IAM::Role"))


def test_nothing_spotline_runs_can_write_where_users_write(stack: Stack) -> None:
    """Writes go to runs/ and results/ only, so nothing spotline writes can trigger it again."""
    bucket_arn = f"arn:aws:s3:::{BUCKET}"
    for role_id in _all_role_ids(stack):
        for s in stack.statements(role_id):
            actions = _as_list(s["Action"])
            writes = [
                a for a in actions if a in ("*", "s3:*") or re.match(r"s3:(Put|Delete|Restore|Replicate)", a)
            ]
            if not writes or s["Effect"] != "Allow":
                continue
            for resource in _as_list(s["Resource"]):
                assert resource.startswith(bucket_arn + "/"), f"{role_id} writes {writes} to {resource}"
                prefix = resource.removeprefix(bucket_arn + "/")
                assert prefix.startswith(WRITE_PREFIXES), f"{role_id} may write {writes} to {prefix}"
        for prefix in USER_PREFIXES:
            assert not _allows(stack.statements(role_id), "s3:PutObject", f"{bucket_arn}/{prefix}x")


def test_functions_read_only_the_prefixes_they_act_on(stack: Stack) -> None:
    roles = _function_roles(stack)
    bucket = f"arn:aws:s3:::{BUCKET}"
    can_read = {
        fn: {p for p in USER_PREFIXES if _allows(stack.statements(role), "s3:GetObject", f"{bucket}/{p}x")}
        for fn, role in roles.items()
    }
    assert can_read == {
        "LaunchFunction": {"configs/"},
        "ConfigDeletedFunction": {"configs/"},  # HeadObject: the object the deleted key holds now
        # the source images of an inference batch's previews; the config an adopted job names
        "JobStateFunction": {"inference/", "adopt/"},
        "TuningStateFunction": set(),
        # a part whose relaunch is refused settles its batch: the previews' source images
        "RelaunchFunction": {"inference/"},
        "ImageIntakeFunction": {"inference/"},
        "BatchCloserFunction": {"inference/"},
        "RunWatchFunction": set(),
    }
    assert _allows(stack.statements(roles["LaunchFunction"]), "s3:PutObject", f"{bucket}/runs/r/config.yaml")
    assert _allows(stack.statements(roles["JobStateFunction"]), "s3:PutObject", f"{bucket}/results/b1/x.json")


def test_functions_that_read_objects_that_may_be_gone_may_list_the_bucket(stack: Stack) -> None:
    """S3 answers a missing key with 404 only to a caller that may list the bucket (403 otherwise): a
    config deleted before it is read, a missing snapshot or _job.yaml must read as missing."""
    roles = _function_roles(stack)
    bucket = f"arn:aws:s3:::{BUCKET}"
    listers = {fn for fn, role in roles.items() if _allows(stack.statements(role), "s3:ListBucket", bucket)}
    assert listers == {
        "LaunchFunction",
        "ConfigDeletedFunction",
        "JobStateFunction",
        "TuningStateFunction",
        "ImageIntakeFunction",
        "BatchCloserFunction",
    }


def test_execution_role_reads_inputs_writes_runs_and_is_for_sagemaker_only(stack: Stack) -> None:
    role = stack.resource("ExecutionRole")
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    statements = stack.statements("ExecutionRole")
    bucket = f"arn:aws:s3:::{BUCKET}"
    for prefix in ("datasets/", "runs/", "inference/"):
        assert _allows(statements, "s3:GetObject", f"{bucket}/{prefix}x")
    assert not _allows(statements, "s3:GetObject", f"{bucket}/configs/x.yaml")
    assert _allows(statements, "s3:PutObject", f"{bucket}/runs/r/checkpoints/c.pt")
    assert _allows(statements, "kms:GenerateDataKey", "<SpotlineKey.Arn>")
    assert _allows(statements, "cloudwatch:PutMetricData", "*")
    (metrics,) = [s for s in statements if "cloudwatch:PutMetricData" in _as_list(s["Action"])]
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}}
    log_group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/TrainingJobs"
    assert _allows(statements, "logs:PutLogEvents", f"{log_group}:log-stream:spotline-x-a01/algo-1")


@pytest.mark.parametrize(
    ("image_uri", "repository"),
    [
        (f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/spotline:1.0.0", "spotline"),
        (f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/vision/spotline@sha256:{'a' * 64}", "vision/spotline"),
        ("210987654321.dkr.ecr.us-east-1.amazonaws.com/team/rail/spotline:v2", "team/rail/spotline"),
    ],
)
def test_execution_role_pulls_only_the_images_repository(image_uri: str, repository: str) -> None:
    stack = Stack({"ImageUri": image_uri})
    parts = image_uri.split(".")
    account, region = parts[0], parts[3]
    assert re.fullmatch(stack.template["Parameters"]["ImageUri"]["AllowedPattern"], image_uri)
    statements = stack.statements("ExecutionRole")
    (pull,) = [s for s in statements if "ecr:BatchGetImage" in _as_list(s["Action"])]
    assert pull["Resource"] == f"arn:aws:ecr:{region}:{account}:repository/{repository}"


def test_execution_role_pulls_the_allowed_images_too_and_functions_know_them() -> None:
    allowed = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/rail-*,arn:aws:ecr:*:{ACCOUNT}:repository/team/x"
    stack = Stack({"ImageUri": IMAGE_URI, "AllowedImages": allowed})
    (pull,) = [s for s in stack.statements("ExecutionRole") if "ecr:BatchGetImage" in _as_list(s["Action"])]
    assert pull["Resource"] == [f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/spotline", *allowed.split(",")]
    assert {"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"} <= set(_as_list(pull["Action"]))
    env = stack.resolve(stack.template["Globals"]["Function"]["Environment"]["Variables"])
    assert Settings.from_env(env).allowed_images == tuple(allowed.split(","))


def test_pass_role_is_limited_to_the_execution_role_and_sagemaker(stack: Stack) -> None:
    passers = set()
    for role_id in _all_role_ids(stack):
        for s in stack.statements(role_id):
            if any(a in ("*", "iam:*", "iam:PassRole") for a in _as_list(s["Action"])):
                assert s["Resource"] == "<ExecutionRole.Arn>", role_id
                assert s["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
                passers.add(role_id)
    creates = {"sagemaker:CreateTrainingJob", "sagemaker:CreateHyperParameterTuningJob"}
    creators = {
        role_id
        for role_id in _all_role_ids(stack)
        if any(creates & set(_as_list(s["Action"])) for s in stack.statements(role_id))
    }
    assert creators and creators == passers


@pytest.mark.parametrize("prefix", ["spotline", "acme"])
def test_functions_create_only_jobs_named_with_the_prefix(prefix: str) -> None:
    stack = Stack({"ImageUri": IMAGE_URI, "JobNamePrefix": prefix})
    jobs = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:"
    allowed = {f"{jobs}training-job/{prefix}-*", f"{jobs}hyper-parameter-tuning-job/{prefix}-*"}
    any_job = f"{jobs}training-job/*"
    tag_conditions = [
        {"Null": {"aws:ResourceTag/spotline:run-id": "false"}},
        {"StringEquals": {"aws:ResourceTag/spotline:adopt": "true"}},
    ]
    roles = _function_roles(stack)
    for role_id in roles.values():
        for s in stack.statements(role_id):
            if not any(a.startswith("sagemaker:") or a == "*" for a in _as_list(s["Action"])):
                continue
            if _as_list(s["Resource"]) == [any_job]:  # jobs named elsewhere: read, and only if tagged
                assert set(_as_list(s["Action"])) == {"sagemaker:DescribeTrainingJob", "sagemaker:ListTags"}
                assert s["Condition"] in tag_conditions, f"{role_id}: {s.get('Condition')}"
                continue
            assert set(_as_list(s["Resource"])) <= allowed, f"{role_id}: {s['Resource']}"
    launch = stack.statements(roles["LaunchFunction"])
    assert _allows(
        launch, "sagemaker:CreateTrainingJob", f"{jobs}training-job/{prefix}-rail-0123456789ab-a01"
    )
    assert not _allows(launch, "sagemaker:CreateTrainingJob", f"{jobs}training-job/other-job")
    tuning_job = f"{jobs}hyper-parameter-tuning-job/{prefix}-rail-1a2b3c4d"
    assert _allows(launch, "sagemaker:CreateHyperParameterTuningJob", tuning_job)
    assert not _allows(
        launch, "sagemaker:CreateHyperParameterTuningJob", f"{jobs}hyper-parameter-tuning-job/x"
    )


def test_tuning_permissions_are_each_functions_own(stack: Stack) -> None:
    """Who may do what to spotline's tuning jobs: the launch creates them, the job-state function
    stops one at its budget, the config-deleted function one whose config is gone, the
    tuning-state function reads them and creates a follow-up."""
    jobs = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:"
    tuning_job, trial = (
        f"{jobs}hyper-parameter-tuning-job/spotline-t-1a2b3c4d",
        f"{jobs}training-job/spotline-t-1a2b3c4d-001-0a1b2c3d",
    )
    actions = (
        "sagemaker:CreateHyperParameterTuningJob",
        "sagemaker:DescribeHyperParameterTuningJob",
        "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
        "sagemaker:StopHyperParameterTuningJob",
    )
    allowed = {
        fn: {a.removeprefix("sagemaker:") for a in actions if _allows(stack.statements(role), a, tuning_job)}
        for fn, role in _function_roles(stack).items()
    }
    assert {fn: a for fn, a in allowed.items() if a} == {
        "LaunchFunction": {"CreateHyperParameterTuningJob"},
        "JobStateFunction": {"StopHyperParameterTuningJob"},
        "ConfigDeletedFunction": {"StopHyperParameterTuningJob"},
        "TuningStateFunction": {
            "CreateHyperParameterTuningJob",
            "DescribeHyperParameterTuningJob",
            "ListTrainingJobsForHyperParameterTuningJob",
        },
    }
    roles = _function_roles(stack)
    for fn in ("LaunchFunction", "TuningStateFunction"):  # tags are set on create
        assert _allows(stack.statements(roles[fn]), "sagemaker:AddTags", tuning_job), fn
    for fn in ("JobStateFunction", "TuningStateFunction"):  # a trial is told by its TuningJobArn
        assert _allows(stack.statements(roles[fn]), "sagemaker:DescribeTrainingJob", trial), fn
    assert not _allows(stack.statements(roles["TuningStateFunction"]), "sagemaker:CreateTrainingJob", trial)


def test_wildcard_resources_only_where_the_action_has_no_resource_level_permissions(stack: Stack) -> None:
    unscoped = {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "ecr:GetAuthorizationToken",
        "cloudwatch:PutMetricData",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeVpcs",
        "ec2:DescribeDhcpOptions",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
    }
    for role_id in _all_role_ids(stack):
        for s in stack.statements(role_id):
            assert not any(a == "*" or a.endswith(":*") for a in _as_list(s["Action"])), role_id
            if "*" in _as_list(s["Resource"]):
                assert set(_as_list(s["Action"])) <= unscoped, f"{role_id}: {s['Action']} on *"
                if "cloudwatch:PutMetricData" in _as_list(s["Action"]):
                    assert "cloudwatch:namespace" in s["Condition"]["StringEquals"]


def test_consumers_may_read_and_delete_from_their_queues_only(
    stack: Stack, functions: dict[str, Any]
) -> None:
    roles = _function_roles(stack)
    for name, function in functions.items():
        sources = {
            e["Properties"]["Queue"] for e in function.get("Events", {}).values() if e["Type"] == "SQS"
        }
        statements = stack.statements(roles[name])
        for source in sources:
            for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
                assert _allows(statements, action, source), f"{name} cannot {action} {source}"
        readable = {
            r
            for s in statements
            if "sqs:ReceiveMessage" in _as_list(s["Action"])
            for r in _as_list(s["Resource"])
        }
        assert readable == sources, name
    assert _allows(stack.statements(roles["JobStateFunction"]), "sqs:SendMessage", "<RelaunchQueue.Arn>")


# -------------------------------------------------------------------------------- alarms and outputs


def test_every_dead_letter_queue_and_function_alarms_to_the_topic(
    stack: Stack, functions: dict[str, Any]
) -> None:
    queues = stack.resources("AWS::SQS::Queue")
    dead_letter = {
        _id(q["RedrivePolicy"]["deadLetterTargetArn"]) for q in queues.values() if "RedrivePolicy" in q
    }
    for rule in stack.resources("AWS::Events::Rule").values():
        dead_letter |= {_id(t["DeadLetterConfig"]["Arn"]) for t in rule["Targets"]}
    for function in functions.values():
        on_failure = function.get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure")
        if on_failure:
            dead_letter.add(_id(on_failure["Destination"]))
    assert len(dead_letter) >= 3
    alarms = list(stack.resources("AWS::CloudWatch::Alarm").values())
    for alarm in alarms:
        assert alarm["AlarmActions"] == ["<AlertTopic>"]
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["Threshold"] == 0
    watched_queues = {
        _id(a["Dimensions"][0]["Value"])
        for a in alarms
        if a["Namespace"] == "AWS/SQS" and a["MetricName"] == "ApproximateNumberOfMessagesVisible"
    }
    watched_functions = {
        _id(a["Dimensions"][0]["Value"])
        for a in alarms
        if a["Namespace"] == "AWS/Lambda" and a["MetricName"] == "Errors"
    }
    assert dead_letter <= watched_queues
    assert set(functions) <= watched_functions


def _emitted_metric_names(name: str) -> bool:
    """Whether functions/ emits ``name``: a literal ``add_metric(name="X")``, or an f-string
    ``add_metric(name=f"Prefix{...}")`` whose rest is a (capitalised) string literal of the code."""
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "functions").rglob("*.py"))
    literal = r'(?:add_metric\(\s*name=|RUNTIME\.count\(\s*)"(\w+)"'
    if name in re.findall(literal, sources):
        return True
    return any(
        name.startswith(prefix) and f'"{name[len(prefix) :].lower()}"' in sources.lower()
        for prefix in re.findall(r'(?:add_metric\(\s*name=|RUNTIME\.count\(\s*)f"(\w+)\{', sources)
    )


def test_dashboard_shows_the_metrics_the_functions_emit(stack: Stack) -> None:
    (dashboard,) = stack.resources("AWS::CloudWatch::Dashboard").values()
    body = json.loads(dashboard["DashboardBody"])
    shown = set(re.findall(r'\{Spotline\} MetricName="(\w+)"', json.dumps(body).replace('\\"', '"')))
    assert {"ConfigsLaunched", "Relaunches", "RunsSucceeded", "RunsFailed", "SpotSavingsUSD"} <= shown
    assert {m for m in shown if not _emitted_metric_names(m)} == set()


def test_outputs_name_what_users_and_the_local_stack_need(stack: Stack) -> None:
    outputs = stack.resolve(stack.template["Outputs"])
    assert outputs["DropBucketName"]["Value"] == BUCKET
    assert outputs["AlertTopicArn"]["Value"] == "<AlertTopic>"
    assert outputs["LedgerTableName"]["Value"] == "<LedgerTable>"
    assert outputs["ExecutionRoleArn"]["Value"] == "<ExecutionRole.Arn>"
    assert outputs["EventBusName"]["Value"] == "default"


def test_samconfig_deploys_the_spotline_stack_with_a_reviewed_changeset() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))["default"]
    assert config["global"]["parameters"]["stack_name"] == "spotline"
    deploy = config["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["confirm_changeset"] is True and deploy["resolve_s3"] is True
    build = config["build"]["parameters"]
    assert build == {"use_container": False, "cached": True, "parallel": True}
