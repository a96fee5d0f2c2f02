"""template.yaml read and resolved for one local stack: parameters, conditions and the intrinsics it uses.

The local stack provisions moto from this resolution, so the names, patterns, queues and settings
it creates are the ones the cloud gets. Physical names are deterministic (``<stack>-<logical id>``
unless the template names the resource) so ``Ref``/``GetAtt`` resolve before anything exists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCOUNT_ID = "123456789012"
# Not a region of the AWS CLI v1's "SSL common name" table (awscli/customizations/
# overridesslcommonname.py): for those it sends SQS calls to queue.amazonaws.com and the like,
# whatever AWS_ENDPOINT_URL says, so `aws sqs ...` would miss the local stack.
REGION = "eu-central-2"
NO_VALUE = object()

_NAME_PROPERTY = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::Events::Rule": "Name",
    "AWS::Events::EventBus": "Name",
    "AWS::Serverless::Function": "FunctionName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::IAM::Role": "RoleName",
}
_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


class TemplateError(ValueError):
    """template.yaml uses something the local stack cannot resolve."""


def find_template(start: Path | None = None) -> Path:
    """template.yaml of this checkout: the repository root above the ``spotline_local`` package."""
    here = Path(__file__).resolve()
    for folder in ([start] if start else []) + list(here.parents):
        candidate = folder / "template.yaml"
        if candidate.is_file():
            return candidate
    raise TemplateError("template.yaml not found (run from a spotline checkout)")


def load_template(path: Path) -> dict[str, Any]:
    """Parse the template with cfn-lint's decoder (short-form tags become ``Fn::`` mappings)."""
    from cfnlint.decode import decode_str

    document, problems = decode_str(path.read_text())
    if document is None:
        raise TemplateError(f"{path}: {problems[0] if problems else 'unreadable template'}")
    plain: dict[str, Any] = _plain(document)
    return plain


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


@dataclass
class Resolver:
    """Resolves intrinsics of ``template`` for a local stack named ``stack_name``."""

    template: dict[str, Any]
    stack_name: str
    queue_url_base: str
    parameters: dict[str, Any] = field(default_factory=dict)
    account_id: str = ACCOUNT_ID
    region: str = REGION

    def __post_init__(self) -> None:
        for name, spec in self.template.get("Parameters", {}).items():
            if name not in self.parameters:
                if "Default" not in spec:
                    raise TemplateError(f"parameter {name} has no default; pass a value")
                self.parameters[name] = spec["Default"]
            value = self.parameters[name]
            if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                self.parameters[name] = [v.strip() for v in value.split(",")] if value else []
            elif not isinstance(value, list):
                self.parameters[name] = str(value)  # CloudFormation hands every scalar parameter over as text
        self._conditions: dict[str, bool] = {}

    @property
    def resources(self) -> dict[str, Any]:
        return dict(self.template.get("Resources", {}))

    def included(self, logical_id: str) -> bool:
        condition = self.resources[logical_id].get("Condition")
        return condition is None or self.condition(condition)

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            spec = self.template.get("Conditions", {}).get(name)
            if spec is None:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self.resolve(spec))
        return self._conditions[name]

    # -- names and attributes -------------------------------------------------------------------

    def physical_name(self, logical_id: str) -> str:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise TemplateError(f"unknown resource {logical_id}")
        kind = resource["Type"]
        prop = _NAME_PROPERTY.get(kind)
        given = resource.get("Properties", {}).get(prop) if prop else None
        if given is not None:
            return str(self.resolve(given))
        name = f"{self.stack_name}-{logical_id}"
        return name.lower() if kind == "AWS::S3::Bucket" else name

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::AccountId": self.account_id,
            "AWS::Region": self.region,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": self.arn("cloudformation", f"stack/{self.stack_name}/local"),
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        kind = self.resources.get(name, {}).get("Type")
        if kind is None:
            raise TemplateError(f"Ref to unknown {name}")
        physical = self.physical_name(name)
        if kind == "AWS::SQS::Queue":
            return f"{self.queue_url_base}/{self.account_id}/{physical}"
        if kind == "AWS::SNS::Topic":
            return self.arn("sns", physical)
        return physical

    def arn(self, service: str, resource: str) -> str:
        if service == "s3":
            return f"arn:aws:s3:::{resource}"
        if service == "iam":
            return f"arn:aws:iam::{self.account_id}:{resource}"
        return f"arn:aws:{service}:{self.region}:{self.account_id}:{resource}"

    def get_att(self, logical_id: str, attribute: str) -> Any:
        kind = self.resources.get(logical_id, {}).get("Type")
        if kind is None:
            raise TemplateError(f"GetAtt of unknown {logical_id}")
        name = self.physical_name(logical_id)
        table: dict[str, dict[str, Any]] = {
            "AWS::S3::Bucket": {"Arn": self.arn("s3", name), "DomainName": f"{name}.s3.amazonaws.com"},
            "AWS::SQS::Queue": {
                "Arn": self.arn("sqs", name),
                "QueueName": name,
                "QueueUrl": self.ref(logical_id),
            },
            "AWS::SNS::Topic": {"TopicArn": self.arn("sns", name), "TopicName": name},
            "AWS::DynamoDB::Table": {"Arn": self.arn("dynamodb", f"table/{name}")},
            "AWS::Events::Rule": {"Arn": self.arn("events", f"rule/{name}")},
            "AWS::Events::EventBus": {"Arn": self.arn("events", f"event-bus/{name}"), "Name": name},
            "AWS::IAM::Role": {"Arn": self.arn("iam", f"role/{name}"), "RoleId": f"AROA{name.upper()[:16]}"},
            "AWS::KMS::Key": {"Arn": self.arn("kms", f"key/{name}"), "KeyId": name},
        }
        if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            table[kind] = {"Arn": self.arn("lambda", f"function:{name}")}
        attributes = table.get(kind, {"Arn": self.arn(kind.split("::")[1].lower(), name)})
        if attribute not in attributes:
            raise TemplateError(f"GetAtt {logical_id}.{attribute} is not supported locally")
        return attributes[attribute]

    # -- intrinsics ------------------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic replaced; ``AWS::NoValue`` entries are dropped."""
        if isinstance(value, list):
            return [r for r in (self.resolve(v) for v in value) if r is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            function = _INTRINSICS.get(key)
            if function is not None:
                return function(self, arg)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return str(self.get_att(logical_id, attribute))
            return str(self.ref(name))

        return _SUB_VAR.sub(replace, text).replace("${!", "${")

    def _get_att(self, arg: Any) -> Any:
        logical_id, attribute = arg.split(".", 1) if isinstance(arg, str) else self.resolve(arg)
        return self.get_att(logical_id, attribute)

    def _if(self, arg: Any) -> Any:
        name, when_true, when_false = arg
        return self.resolve(when_true if self.condition(name) else when_false)

    def _find_in_map(self, arg: Any) -> Any:
        name, top, second = self.resolve(arg)
        return self.template["Mappings"][name][top][second]


def _select(resolver: Resolver, arg: Any) -> Any:
    index, items = resolver.resolve(arg)
    return items[int(index)]


_INTRINSICS: dict[str, Any] = {
    "Ref": lambda r, a: r.ref(a),
    "Fn::GetAtt": Resolver._get_att,
    "Fn::Sub": Resolver._sub,
    "Fn::Join": lambda r, a: str(a[0]).join(str(v) for v in r.resolve(a[1])),
    "Fn::Select": _select,
    "Fn::Split": lambda r, a: str(r.resolve(a[1])).split(a[0]),
    "Fn::If": Resolver._if,
    "Fn::Equals": lambda r, a: r.resolve(a[0]) == r.resolve(a[1]),
    "Fn::Not": lambda r, a: not r.resolve(a[0]),
    "Fn::And": lambda r, a: all(r.resolve(v) for v in a),
    "Fn::Or": lambda r, a: any(r.resolve(v) for v in a),
    "Condition": lambda r, a: r.condition(a),
    "Fn::FindInMap": Resolver._find_in_map,
    "Fn::GetAZs": lambda r, a: [f"{r.region}a", f"{r.region}b"],
    "Fn::Base64": lambda r, a: r.resolve(a),
}
