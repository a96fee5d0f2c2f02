"""The whole pipeline on one machine: moto, the local SageMaker, template.yaml's wiring, the functions.

```
 S3 (moto) ─► EventBridge (moto rules from template.yaml) ─► SQS target / queue ─► dispatcher ─► handler
     ▲                       ▲                                                               │
     │                       └──── "SageMaker Training Job State Change" ◄── local SageMaker ◄┘
     └──── channels, checkpoints, model.tar.gz ───────── container processes (/opt/ml contract)
```
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spotline.domain.settings import SPOT_MARKET
from spotline_local.dispatch import Dispatcher
from spotline_local.faults import Fault
from spotline_local.images import LocalImages
from spotline_local.moto_stack import FAKE_CREDENTIALS, Clients, MotoServer
from spotline_local.owned_folder import OwnedFolder, claim
from spotline_local.provision import Provisioned, Provisioner
from spotline_local.running_stacks import forget_running, remember_running
from spotline_local.sagemaker.api import LocalSageMaker, SageMakerServer
from spotline_local.sagemaker.runner import RunnerSettings
from spotline_local.stack_lock import LOCK_FILE, StackLock, holder
from spotline_local.template import REGION, Resolver, find_template, load_template

log = logging.getLogger(__name__)

LOCAL_IMAGE_URI = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/spotline:local"
STATE_FILE = "stack.json"
# What a stack writes in its workdir (recorded as spotline's, so that only these are ever removed).
WORKDIR_ENTRIES = (STATE_FILE, LOCK_FILE, "logs", "jobs")
OBSERVER_QUEUE = "local-alert-observer"


@dataclass
class StackOptions:
    """Knobs of a local stack; defaults suit ``spotline local up``, tests and the demo shorten them."""

    workdir: Path = Path(".spotline/local")
    template: Path | None = None
    stack_name: str = "spotline-local"
    parameters: dict[str, Any] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    images: LocalImages = field(default_factory=LocalImages)  # images of your own -> local commands
    schedule_period_s: float | None = 10.0  # the closer's "rate(1 minute)", shortened
    retry_delay_s: float = 1.0
    spot_discount: float = 0.7
    torch_threads: int | None = None  # None: the cores free when a job starts, shared among the jobs
    max_concurrent_jobs: int = 1
    phase_delay_s: float = 0.3
    host: str = "127.0.0.1"
    moto_port: int | None = None
    sagemaker_port: int = 0
    fresh_workdir: bool = False  # remove what an earlier stack of this workdir wrote (the demo's)


class AlertLog:
    """Every SNS message published to the alert topic, seen through an SQS queue subscribed to it."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def poll(self, wait_s: int = 0) -> list[dict[str, Any]]:
        """Drain what has arrived; returns every message so far (oldest first)."""
        with self._lock:
            while True:
                response = self.sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s
                )
                batch = response.get("Messages", [])
                if not batch:
                    break
                for message in batch:
                    envelope = json.loads(message["Body"])
                    self.messages.append(
                        {
                            "subject": envelope.get("Subject", ""),
                            "message": envelope.get("Message", ""),
                            "attributes": {
                                k: v.get("Value")
                                for k, v in (envelope.get("MessageAttributes") or {}).items()
                            },
                            "message_id": envelope.get("MessageId"),
                        }
                    )
                    self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
                wait_s = 0
            return list(self.messages)


class LocalStack:
    """Start with :meth:`start` (or as a context manager); everything runs in this process."""

    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.workdir = Path(self.options.workdir).resolve()
        self.moto = MotoServer(self.options.host, self.options.moto_port, self.workdir / "logs" / "moto.log")
        self.clients = Clients(self.moto.endpoint)
        self.provisioned = Provisioned()
        self.sagemaker: LocalSageMaker | None = None
        self.sagemaker_server: SageMakerServer | None = None
        self.dispatcher: Dispatcher | None = None
        self.alerts: AlertLog | None = None
        self._saved_env: dict[str, str | None] = {}
        self.lock = StackLock(self.workdir)
        self._workdir: OwnedFolder | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    def start_services(self) -> None:
        """moto, the resources of template.yaml, the local SageMaker and the alert observer."""
        try:
            self._start_services()
        except BaseException:
            self.stop()
            raise

    def prepare_workdir(self, *entries: str) -> OwnedFolder:
        """Claim and lock the workdir (once); ``entries`` are more names to record as the stack's.

        :class:`ForeignFolder` if the folder holds someone else's files, :class:`StackRunning` if a
        stack already runs there. With ``fresh_workdir``, what earlier stacks wrote there goes first.
        """
        if self._workdir is None:
            folder = claim(self.workdir, "local stack")
            self.lock.acquire()
            if self.options.fresh_workdir:
                folder.clear(keep=(LOCK_FILE,))
            folder.remember(*WORKDIR_ENTRIES)
            self._workdir = folder
        if entries:
            self._workdir.remember(*entries)
        return self._workdir

    def _start_services(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.prepare_workdir()
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.moto.start()
        template_path = self.options.template or find_template()
        parameters = {"ImageUri": LOCAL_IMAGE_URI, **self._allowed_images(), **self.options.parameters}
        resolver = Resolver(
            load_template(template_path), self.options.stack_name, self.moto.endpoint, parameters
        )
        self.provisioned = Provisioner(resolver, self.clients).provision()
        settings = RunnerSettings(
            workdir=self.workdir / "jobs",
            spot_discount=self.options.spot_discount,
            phase_delay_s=self.options.phase_delay_s,
            torch_threads=self.options.torch_threads,
            own_image=str(parameters["ImageUri"]),
            images=self.options.images,
            max_concurrent_jobs=self.options.max_concurrent_jobs,
        )
        self.sagemaker = LocalSageMaker(
            clients=self.clients,
            settings=settings,
            faults=self.options.faults,
            max_concurrent_jobs=self.options.max_concurrent_jobs,
        )
        self.sagemaker_server = SageMakerServer(
            self.sagemaker, self.options.host, self.options.sagemaker_port
        )
        self.sagemaker_server.start()
        self.clients.overrides["sagemaker"] = self.sagemaker_server.endpoint
        if "SPOTLINE_TOPIC_ARN" in self.function_env:  # a template of spotline's (tests use others too)
            self._create_execution_role()
            self._observe_alerts()
            self._write_state()

    def _allowed_images(self) -> dict[str, str]:
        """The images the local images file maps are the ones this stack allows (its local "ECR")."""
        repositories = self.options.images.allowed_repositories()
        return {"AllowedImages": ",".join(repositories)} if repositories else {}

    def start_functions(self) -> None:
        """The dispatcher: from now on rules, queues and schedules invoke the functions."""
        from spotline.adapters import aws

        aws.reset_clients()
        self.dispatcher = Dispatcher(
            self.provisioned,
            self.clients,
            functions_log=self.workdir / "logs" / "functions.log",
            schedule_period_s=self.options.schedule_period_s,
            retry_delay_s=self.options.retry_delay_s,
        )
        self.dispatcher.start()

    def start(self) -> LocalStack:
        """Services, this process's environment set as the functions' (the Lambda runtime's), functions."""
        self.start_services()
        for name, value in self.environment().items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            self._saved_env.setdefault(name, os.environ.pop(name, None))
        self.start_functions()
        return self

    def stop(self) -> None:
        if self.sagemaker is not None:
            self.sagemaker.stop_all()
        if self.dispatcher is not None:
            self.dispatcher.stop()
            self.dispatcher = None
        if self.sagemaker_server is not None:
            self.sagemaker_server.stop()
            self.sagemaker_server = None
        self.moto.stop()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        if self.lock.held:  # only the stack that wrote the state file removes it
            (self.workdir / STATE_FILE).unlink(missing_ok=True)
            forget_running(self.workdir)
            self.lock.release()
            self._workdir = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what clients need to know -------------------------------------------------------------------

    @property
    def function_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for spec in self.provisioned.functions.values():
            env.update(spec.environment)
        return env

    @property
    def bucket(self) -> str:
        return self.function_env["SPOTLINE_BUCKET"]

    @property
    def table(self) -> str:
        return self.function_env["SPOTLINE_TABLE"]

    @property
    def topic_arn(self) -> str:
        return self.function_env["SPOTLINE_TOPIC_ARN"]

    @property
    def sagemaker_endpoint(self) -> str:
        assert self.sagemaker_server is not None
        return self.sagemaker_server.endpoint

    def activity(self) -> tuple[object, ...]:
        """Changes whenever something in the stack moves: a job, an event a function handled, a
        dead letter. Waits on this fail when it stops changing (:mod:`spotline_local.progress`)."""
        jobs = self.sagemaker.activity() if self.sagemaker is not None else ()
        stats = self.dispatcher.stats if self.dispatcher is not None else None
        return (jobs, stats.events if stats else 0, stats.dead_lettered if stats else 0)

    def endpoint_env(self) -> dict[str, str]:
        """What the AWS CLI and boto3 scripts need to talk to this stack."""
        return {
            "AWS_ENDPOINT_URL": self.moto.endpoint,
            "AWS_ENDPOINT_URL_SAGEMAKER": self.sagemaker_endpoint,
            **FAKE_CREDENTIALS,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }

    def environment(self) -> dict[str, str]:
        """The functions' environment: template Globals, endpoints, and no tracing outside Lambda."""
        return {
            **self.function_env,
            **self.endpoint_env(),
            "POWERTOOLS_TRACE_DISABLED": "true",
            SPOT_MARKET: "emulated",  # the local SageMaker's Spot: reports say their figures are not AWS's
        }

    def _create_execution_role(self) -> None:
        """The SageMaker execution role, in moto's IAM: what the SDK path names and may look up."""
        arn = self.function_env.get("SPOTLINE_EXECUTION_ROLE_ARN", "")
        name = arn.rsplit("/", 1)[-1]
        if not name:
            return
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "sagemaker.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        iam = self.clients("iam")
        with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))

    def _observe_alerts(self) -> None:
        sqs, sns = self.clients("sqs"), self.clients("sns")
        url = sqs.create_queue(QueueName=OBSERVER_QUEUE)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=arn)
        self.alerts = AlertLog(sqs, url)

    def _write_state(self) -> None:
        state = {
            "endpoints": self.endpoint_env(),
            "bucket": self.bucket,
            "table": self.table,
            "topic_arn": self.topic_arn,
            "workdir": str(self.workdir),
            "pid": os.getpid(),
            "function_env": self.function_env,  # the functions' settings: the CLI's flows, spotline.notebook
        }
        (self.workdir / STATE_FILE).write_text(json.dumps(state, indent=2))
        remember_running(self.workdir)


def read_state(workdir: Path) -> dict[str, Any] | None:
    """The endpoints and names a running stack wrote, or None (none runs, or it ended uncleanly)."""
    path = Path(workdir) / STATE_FILE
    if not path.is_file() or holder(workdir) is None:
        return None
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state
