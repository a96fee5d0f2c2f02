"""Which spotline the CLI talks to: a running local stack (its state file) or a deployed stack by name."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spotline_local.stack import read_state


class CliError(Exception):
    """A user-facing problem: one line, plus a hint saying what to do about it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass
class Target:
    """A spotline deployment: its drop bucket, ledger table and topic, and how to reach them."""

    label: str
    bucket: str
    table: str
    topic_arn: str | None = None
    endpoints: dict[str, str] = field(default_factory=dict)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_local(self) -> bool:
        """The local stack (its Spot market is emulated), not a deployed one."""
        return bool(self.endpoints)

    @property
    def region(self) -> str:
        if self.endpoints:
            return self.endpoints.get("AWS_DEFAULT_REGION", "us-east-1")
        import boto3

        return boto3.session.Session().region_name or "us-east-1"

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._build(service)
        return self._clients[service]

    def _build(self, service: str) -> Any:
        import boto3

        if not self.endpoints:
            return boto3.client(service)
        specific = self.endpoints.get(f"AWS_ENDPOINT_URL_{service.upper()}")
        return boto3.client(
            service,
            endpoint_url=specific or self.endpoints["AWS_ENDPOINT_URL"],
            region_name=self.endpoints.get("AWS_DEFAULT_REGION", "us-east-1"),
            aws_access_key_id=self.endpoints.get("AWS_ACCESS_KEY_ID", "testing"),
            aws_secret_access_key=self.endpoints.get("AWS_SECRET_ACCESS_KEY", "testing"),
        )


def local_target(workdir: Path) -> Target:
    state = read_state(workdir)
    if state is None:
        raise CliError(
            f"no local stack is running (no {workdir}/stack.json)",
            "start one in another terminal with `spotline local up`, or name a deployed stack with --stack",
        )
    return Target(
        label="local stack",
        bucket=state["bucket"],
        table=state["table"],
        topic_arn=state.get("topic_arn"),
        endpoints=dict(state["endpoints"]),
    )


def deployed_target(stack_name: str) -> Target:
    """Names from the CloudFormation outputs of a deployed spotline stack."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        stacks = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except (ClientError, BotoCoreError) as e:
        raise CliError(
            f"cannot read stack {stack_name!r}: {e}", "check the name, the region and your AWS credentials"
        ) from e
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    try:
        return Target(
            label=f"stack {stack_name}",
            bucket=outputs["DropBucketName"],
            table=outputs["LedgerTableName"],
            topic_arn=outputs.get("AlertTopicArn"),
        )
    except KeyError as e:
        raise CliError(f"stack {stack_name!r} has no output {e}", "is it a spotline stack?") from e


def resolve_target(stack_name: str | None, workdir: Path) -> Target:
    return deployed_target(stack_name) if stack_name else local_target(workdir)
