"""Create template.yaml's bucket, table, topic, queues, buses and rules in moto; describe the functions.

What moto cannot do itself — invoke a Lambda function — is described here as *triggers* for the
dispatcher: a rule that targets a function gets a local "target queue" (moto delivers rule matches
to SQS), an SQS event source keeps its batch size and window, a schedule keeps its rate.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spotline_local.template import Resolver, TemplateError

log = logging.getLogger(__name__)

FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
PROVISIONED_TYPES = frozenset(
    {
        "AWS::Events::EventBus",
        "AWS::S3::Bucket",
        "AWS::DynamoDB::Table",
        "AWS::SNS::Topic",
        "AWS::SQS::Queue",
        "AWS::SNS::Subscription",
        *FUNCTION_TYPES,
        "AWS::Events::Rule",
        "AWS::Lambda::EventSourceMapping",
    }
)
# What the local stack deliberately does not create, and why. Any other resource type fails
# provisioning: whatever template.yaml gains is either run here or skipped here on purpose.
NOT_RUN_LOCALLY = {
    "AWS::IAM::Role": "the local functions run as the developer; IAM is tested in tests/integration",
    "AWS::IAM::ManagedPolicy": "the same: permissions are checked on the template, not enforced locally",
    "AWS::KMS::Key": "moto stores the local data unencrypted; the key's policy is checked on the template",
    "AWS::KMS::Alias": "the same: no key locally",
    "AWS::Lambda::Permission": "the dispatcher invokes the functions itself (no resource policy to check)",
    "AWS::Logs::LogGroup": "the local functions log to the stack's own log file",
    "AWS::S3::BucketPolicy": "TLS-only and log-delivery policies mean nothing on a loopback moto",
    "AWS::SNS::TopicPolicy": "the same for the alert topic",
    "AWS::SQS::QueuePolicy": "the same for the queues (moto delivers rule matches without a policy)",
    "AWS::CloudWatch::Alarm": "moto has no alarm actions; the functions' metrics go to their logs",
    "AWS::CloudWatch::Dashboard": "a dashboard needs the CloudWatch console; there is none locally",
}
DEFAULT_ASYNC_RETRIES = 2
_RATE = re.compile(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)")


@dataclass(frozen=True)
class AsyncTrigger:
    """EventBridge rule -> function (asynchronous invoke): events arrive on ``queue_url``."""

    function: str
    rule: str
    queue_url: str
    max_retries: int
    dead_letter_url: str | None


@dataclass(frozen=True)
class QueueTrigger:
    """SQS event source mapping: batches of up to ``batch_size`` collected for ``window_s``."""

    function: str
    queue_url: str
    queue_arn: str
    batch_size: int
    window_s: float
    report_failures: bool


@dataclass(frozen=True)
class ScheduleTrigger:
    """A schedule rule: ``function`` is invoked with ``payload`` every ``period_s`` seconds."""

    function: str
    rule: str
    period_s: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class FunctionSpec:
    """One ``AWS::Serverless::Function`` as the local dispatcher runs it."""

    logical_id: str
    name: str
    handler: str
    environment: dict[str, str]
    timeout_s: int


@dataclass
class Provisioned:
    """What exists in moto after provisioning, and what the dispatcher must drive."""

    buckets: dict[str, str] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)
    topics: dict[str, str] = field(default_factory=dict)
    queues: dict[str, str] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    triggers: list[AsyncTrigger | QueueTrigger | ScheduleTrigger] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)


class Provisioner:
    """Creates the resources of one resolved template with clients pointed at moto."""

    def __init__(self, resolver: Resolver, clients: Any) -> None:
        self.r = resolver
        self.c = clients
        self.out = Provisioned()

    def provision(self) -> Provisioned:
        resources = {k: v for k, v in self.r.resources.items() if self.r.included(k)}
        by_type: dict[str, list[str]] = {}
        for logical_id, resource in resources.items():
            by_type.setdefault(resource["Type"], []).append(logical_id)
        unknown = sorted(set(by_type) - PROVISIONED_TYPES - set(NOT_RUN_LOCALLY))
        if unknown:
            raise TemplateError(f"resource types neither run nor deliberately skipped locally: {unknown}")
        for logical_id in by_type.get("AWS::Events::EventBus", []):
            self.c("events").create_event_bus(Name=self.r.physical_name(logical_id))
        for logical_id in by_type.get("AWS::S3::Bucket", []):
            self._bucket(logical_id, resources[logical_id].get("Properties", {}))
        for logical_id in by_type.get("AWS::DynamoDB::Table", []):
            self._table(logical_id, resources[logical_id].get("Properties", {}))
        for logical_id in by_type.get("AWS::SNS::Topic", []):
            name = self.r.physical_name(logical_id)
            self.out.topics[logical_id] = self.c("sns").create_topic(Name=name)["TopicArn"]
        # Dead-letter queues first: a redrive policy names an existing queue.
        queues = sorted(
            by_type.get("AWS::SQS::Queue", []),
            key=lambda q: "RedrivePolicy" in resources[q].get("Properties", {}),
        )
        for logical_id in queues:
            self._queue(logical_id, resources[logical_id].get("Properties", {}))
        for logical_id in by_type.get("AWS::SNS::Subscription", []):
            self._subscription(resources[logical_id].get("Properties", {}))
        for kind in FUNCTION_TYPES:
            for logical_id in by_type.get(kind, []):
                self._function(logical_id, resources[logical_id])
        for logical_id in by_type.get("AWS::Events::Rule", []):
            self._rule(logical_id, self.r.resolve(resources[logical_id].get("Properties", {})))
        for logical_id in by_type.get("AWS::Lambda::EventSourceMapping", []):
            props = self.r.resolve(resources[logical_id].get("Properties", {}))
            function = self._function_by_ref(props["FunctionName"])
            self._sqs_source(function, props)
        for name, spec in self.r.template.get("Outputs", {}).items():
            if "Condition" in spec and not self.r.condition(spec["Condition"]):
                continue
            self.out.outputs[name] = self.r.resolve(spec["Value"])
        return self.out

    # -- storage and messaging -------------------------------------------------------------------

    def _bucket(self, logical_id: str, props: dict[str, Any]) -> None:
        s3 = self.c("s3")
        name = self.r.physical_name(logical_id)
        region = s3.meta.region_name
        where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=name, **where)
        self.out.buckets[logical_id] = name
        props = self.r.resolve(props)
        if props.get("VersioningConfiguration", {}).get("Status") == "Enabled":
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        notifications = props.get("NotificationConfiguration", {})
        if str(notifications.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled")).lower() == "true":
            s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )

    def _table(self, logical_id: str, props: dict[str, Any]) -> None:
        props = self.r.resolve(props)
        name = self.r.physical_name(logical_id)
        on_demand = props.get("BillingMode", "PROVISIONED") == "PAY_PER_REQUEST"
        request: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
        }
        throughput = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        if on_demand:
            request["BillingMode"] = "PAY_PER_REQUEST"
        else:
            request["ProvisionedThroughput"] = props.get("ProvisionedThroughput", throughput)
        indexes = []
        for index in props.get("GlobalSecondaryIndexes", []):
            entry = {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
            if not on_demand:
                entry["ProvisionedThroughput"] = index.get("ProvisionedThroughput", throughput)
            indexes.append(entry)
        if indexes:
            request["GlobalSecondaryIndexes"] = indexes
        if props.get("LocalSecondaryIndexes"):
            request["LocalSecondaryIndexes"] = props["LocalSecondaryIndexes"]
        dynamodb = self.c("dynamodb")
        dynamodb.create_table(**request)
        ttl = props.get("TimeToLiveSpecification")
        if ttl and str(ttl.get("Enabled")).lower() == "true":
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        self.out.tables[logical_id] = name

    def _queue(self, logical_id: str, props: dict[str, Any]) -> None:
        props = self.r.resolve(props)
        name = self.r.physical_name(logical_id)
        attributes: dict[str, str] = {}
        for key in (
            "DelaySeconds",
            "VisibilityTimeout",
            "MessageRetentionPeriod",
            "ReceiveMessageWaitTimeSeconds",
            "MaximumMessageSize",
            "FifoQueue",
            "ContentBasedDeduplication",
        ):
            if key in props:
                attributes[key] = str(props[key]).lower() if isinstance(props[key], bool) else str(props[key])
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
        url = self.c("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        self.out.queues[logical_id] = url

    def _subscription(self, props: dict[str, Any]) -> None:
        props = self.r.resolve(props)
        if props.get("Protocol") != "sqs":
            return  # email and other people-facing endpoints have no local meaning
        self.c("sns").subscribe(TopicArn=props["TopicArn"], Protocol="sqs", Endpoint=props["Endpoint"])

    # -- functions and how they are invoked ------------------------------------------------------

    def _function(self, logical_id: str, resource: dict[str, Any]) -> None:
        globals_ = self.r.resolve(self.r.template.get("Globals", {}).get("Function", {}))
        props = self.r.resolve(resource.get("Properties", {}))
        env = {
            **globals_.get("Environment", {}).get("Variables", {}),
            **props.get("Environment", {}).get("Variables", {}),
        }
        spec = FunctionSpec(
            logical_id=logical_id,
            name=self.r.physical_name(logical_id),
            handler=str(props.get("Handler") or globals_.get("Handler")),
            environment={k: str(v) for k, v in env.items()},
            timeout_s=int(props.get("Timeout") or globals_.get("Timeout") or 3),
        )
        self.out.functions[logical_id] = spec
        for event_id, event in (props.get("Events") or {}).items():
            kind = event.get("Type")
            event_props = event.get("Properties", {})
            if kind in ("EventBridgeRule", "CloudWatchEvent"):
                self._function_rule(spec, props, f"{spec.name}-{event_id}", event_props)
            elif kind == "SQS":
                self._sqs_source(spec, event_props)
            elif kind in ("Schedule", "ScheduleV2"):
                expression = event_props.get("Schedule") or event_props.get("ScheduleExpression")
                payload = json.loads(event_props["Input"]) if event_props.get("Input") else {}
                self.out.triggers.append(
                    ScheduleTrigger(spec.logical_id, f"{spec.name}-{event_id}", _period(expression), payload)
                )
            else:
                raise TemplateError(f"{logical_id}.Events.{event_id}: event type {kind} is not run locally")

    def _function_rule(
        self, spec: FunctionSpec, function_props: dict[str, Any], rule_name: str, props: dict[str, Any]
    ) -> None:
        events = self.c("events")
        bus = props.get("EventBusName", "default")
        events.put_rule(Name=rule_name, EventPattern=json.dumps(props["Pattern"]), EventBusName=bus)
        self.out.rules[rule_name] = rule_name
        self._async_trigger(spec, function_props, rule_name, bus, props)

    def _async_trigger(
        self,
        spec: FunctionSpec,
        function_props: dict[str, Any],
        rule_name: str,
        bus: str,
        target: Mapping[str, Any],
    ) -> None:
        """A rule invoking ``spec`` asynchronously. ``target``: the rule target's (or the SAM event's)
        ``DeadLetterConfig`` and ``RetryPolicy``; the function's ``EventInvokeConfig`` wins."""
        dlq = target.get("DeadLetterConfig", {})
        dlq_url = self._dlq_url(dlq.get("Arn") or dlq.get("QueueLogicalId"), function_props)
        retries = target.get("RetryPolicy", {}).get("MaximumRetryAttempts")
        invoke = function_props.get("EventInvokeConfig", {})
        if invoke.get("MaximumRetryAttempts") is not None:
            retries = int(invoke["MaximumRetryAttempts"])
        sqs = self.c("sqs")
        url = sqs.create_queue(QueueName=f"local-target-{rule_name}"[:80])["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.c("events").put_targets(Rule=rule_name, EventBusName=bus, Targets=[{"Id": "local", "Arn": arn}])
        self.out.triggers.append(
            AsyncTrigger(
                spec.logical_id,
                rule_name,
                url,
                DEFAULT_ASYNC_RETRIES if retries is None else retries,
                dlq_url,
            )
        )

    def _dlq_url(self, ref: str | None, function_props: dict[str, Any]) -> str | None:
        """The async invoke's dead-letter queue: the function's own, else the rule target's."""
        own = function_props.get("DeadLetterQueue", {}).get("TargetArn")
        on_failure = (
            function_props.get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure", {})
        )
        for candidate in (own, on_failure.get("Destination"), ref):
            if not candidate:
                continue
            name = candidate.rsplit(":", 1)[-1] if candidate.startswith("arn:") else None
            if name is None and candidate in self.out.queues:
                return self.out.queues[candidate]
            for url in self.out.queues.values():
                if name and url.rsplit("/", 1)[-1] == name:
                    return url
        return None

    def _sqs_source(self, spec: FunctionSpec, props: dict[str, Any]) -> None:
        if str(props.get("Enabled", True)).lower() == "false":
            return
        arn = str(props.get("Queue") or props.get("EventSourceArn"))
        name = arn.rsplit(":", 1)[-1]
        url = next((u for u in self.out.queues.values() if u.rsplit("/", 1)[-1] == name), None)
        if url is None:
            raise TemplateError(f"{spec.logical_id}: SQS event source {arn} is not a queue of the template")
        self.out.triggers.append(
            QueueTrigger(
                function=spec.logical_id,
                queue_url=url,
                queue_arn=arn,
                batch_size=int(props.get("BatchSize", 10)),
                window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                report_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
            )
        )

    def _function_by_ref(self, value: str) -> FunctionSpec:
        for spec in self.out.functions.values():
            if value in (spec.name, spec.logical_id) or value.endswith(f":function:{spec.name}"):
                return spec
        raise TemplateError(f"unknown function {value}")

    def _rule(self, logical_id: str, props: dict[str, Any]) -> None:
        name = self.r.physical_name(logical_id)
        bus = props.get("EventBusName", "default")
        if str(props.get("State", "ENABLED")) != "ENABLED":
            return
        targets = props.get("Targets", [])
        if "ScheduleExpression" in props:
            for target in targets:
                function = self._function_by_ref(target["Arn"])
                payload = json.loads(target["Input"]) if target.get("Input") else {}
                self.out.triggers.append(
                    ScheduleTrigger(function.logical_id, name, _period(props["ScheduleExpression"]), payload)
                )
            return
        events = self.c("events")
        events.put_rule(Name=name, EventPattern=json.dumps(props["EventPattern"]), EventBusName=bus)
        self.out.rules[logical_id] = name
        for target in targets:
            arn = str(target["Arn"])
            if ":lambda:" in arn:
                function = self._function_by_ref(arn)
                resource = self.r.resources[function.logical_id]
                function_props = self.r.resolve(resource.get("Properties", {}))
                self._async_trigger(function, function_props, name, bus, target)
            elif ":sqs:" in arn:
                entry = {"Id": str(target.get("Id", "sqs")), "Arn": arn}
                events.put_targets(Rule=name, EventBusName=bus, Targets=[entry])
            else:
                log.warning("rule %s: target %s has no local counterpart; skipped", name, arn)


def _period(expression: str) -> float:
    match = _RATE.fullmatch(str(expression).strip())
    if match is None:
        raise TemplateError(f"schedule {expression!r}: only rate(N unit) runs locally")
    unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
    return float(int(match.group(1)) * unit)
