"""Which spotline the CLI talks to: a running local stack (its state file) or a deployed stack by name."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spotline_local.running_stacks import recorded_workdirs

if TYPE_CHECKING:
    from spotline.wiring import Wiring
from spotline_local.stack import STATE_FILE, read_state
from spotline_local.template import REGION


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
    workdir: Path | None = None  # a local stack's folder (its jobs' logs are there too)
    settings_env: dict[str, str] = field(default_factory=dict, repr=False)  # the functions' settings
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def wiring(self) -> Wiring:
        """The control plane's flows, built as the functions build them, on this target's clients."""
        from spotline.domain.settings import Settings, SettingsError
        from spotline.wiring import Wiring

        try:
            settings = Settings.from_env(self.settings_env)
        except SettingsError as e:
            raise CliError(f"the {self.label} does not say how its functions are set up: {e}") from e
        return Wiring(settings, clients=self.client)

    @property
    def is_local(self) -> bool:
        """The local stack (its Spot market is emulated), not a deployed one."""
        return bool(self.endpoints)

    @property
    def region(self) -> str:
        if self.endpoints:
            return self.endpoints.get("AWS_DEFAULT_REGION", REGION)
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
            region_name=self.endpoints.get("AWS_DEFAULT_REGION"),
            aws_access_key_id=self.endpoints.get("AWS_ACCESS_KEY_ID", "testing"),
            aws_secret_access_key=self.endpoints.get("AWS_SECRET_ACCESS_KEY", "testing"),
        )


WORKDIR_ENV = "SPOTLINE_WORKDIR"
DEFAULT_WORKDIR = Path(".spotline/local")


def find_workdir(workdir: Path | None) -> Path:
    """The workdir of the local stack to talk to.

    ``--workdir`` if given; else ``$SPOTLINE_WORKDIR``; else ``.spotline/local`` in this directory or
    the nearest parent that has a running one; else the stack most recently started by this user
    that still runs (:mod:`spotline_local.running_stacks`); else ``.spotline/local`` here.
    """
    if workdir is not None:
        return workdir
    if os.environ.get(WORKDIR_ENV):
        return Path(os.environ[WORKDIR_ENV])
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if read_state(folder / DEFAULT_WORKDIR) is not None:
            return folder / DEFAULT_WORKDIR
    for recorded in recorded_workdirs():
        if read_state(recorded) is not None:
            return recorded
    return DEFAULT_WORKDIR


def local_target(workdir: Path | None) -> Target:
    where = find_workdir(workdir)
    state = read_state(where)
    if state is None:
        stale = (where / STATE_FILE).is_file()
        raise CliError(
            f"no local stack is running in {where}"
            + (" (the last one there ended without stopping cleanly)" if stale else ""),
            "start one in another terminal with `spotline local up`, or name a deployed stack with --stack",
        )
    return Target(
        label="local stack",
        bucket=state["bucket"],
        table=state["table"],
        topic_arn=state.get("topic_arn"),
        endpoints=dict(state["endpoints"]),
        workdir=Path(state.get("workdir") or where),
        settings_env=dict(state.get("function_env") or {}),
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
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stacks[0].get("Parameters", [])}
    try:
        return Target(
            label=f"stack {stack_name}",
            bucket=outputs["DropBucketName"],
            table=outputs["LedgerTableName"],
            topic_arn=outputs.get("AlertTopicArn"),
            settings_env={
                "SPOTLINE_BUCKET": outputs["DropBucketName"],
                "SPOTLINE_TABLE": outputs["LedgerTableName"],
                "SPOTLINE_TOPIC_ARN": outputs.get("AlertTopicArn", ""),
                "SPOTLINE_IMAGE_URI": parameters.get("ImageUri", ""),
                "SPOTLINE_EXECUTION_ROLE_ARN": outputs.get("ExecutionRoleArn", "-"),
                "SPOTLINE_JOB_PREFIX": parameters.get("JobNamePrefix") or "spotline",
                "SPOTLINE_PRICES": parameters.get("PriceTable", ""),
            },
        )
    except KeyError as e:
        raise CliError(f"stack {stack_name!r} has no output {e}", "is it a spotline stack?") from e


def resolve_target(stack_name: str | None, workdir: Path | None) -> Target:
    return deployed_target(stack_name) if stack_name else local_target(workdir)
