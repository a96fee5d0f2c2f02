"""Test setup for the recovery flow: spotline's recovery wiring over a moto account, and the two
things the emulator cannot do by itself — end a training job the way SageMaker would, and let
time pass for the relaunch delay queue.

Both touch moto's in-memory backends, in this one place: that is setting up the emulated
service, not mocking spotline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aws_lambda_powertools import Metrics

from spotline.domain.events import parse_training_job_state_change
from spotline.domain.settings import Settings
from spotline.ledger.runs import RunLedger
from spotline.runs.cancel import RunCanceller
from spotline.runs.job_state import JobStateFlow, StateOutcome
from spotline.runs.publish import METRICS_NAMESPACE, RunPublisher
from spotline.runs.relaunch import Relauncher, RelaunchOutcome, RelaunchRequest
from spotline.training.launch import TrainingLauncher
from spotline.wiring import Wiring
from tests.support.aws_account import ACCOUNT, BUCKET, REGION, Account
from tests.support.events import load_event, s3_object_created

RAIL_CONFIG = """\
job:
  instance_type: ml.g4dn.xlarge
  fallback_instance_types: [ml.g5.xlarge]
  max_runtime: 1h
  max_attempts: {max_attempts}
  retry_backoff: {backoff}
  {extra}
  channels:
    train: datasets/rail/train
    val: datasets/rail/val
promote:
  metric: val/mAP50
  min: 0.6
"""


INTERRUPTED = ("Stopped", "Interrupted")  # how SageMaker reports a Spot interruption it gave up on


def job(run_id: str, attempt: int) -> str:
    """The job name of ``attempt`` of ``run_id`` (the tests' prefix is ``spotline``)."""
    return f"spotline-{run_id}-a{attempt:02d}"


def rail_config(*, max_attempts: int = 5, backoff: str = "60s", extra: str = "") -> str:
    return RAIL_CONFIG.format(max_attempts=max_attempts, backoff=backoff, extra=extra)


@dataclass
class Clock:
    """A settable clock: the flow reads time through it, the tests move it."""

    now: float = 1_764_201_600.0

    def __call__(self) -> float:
        return self.now


def train_channels() -> list[dict[str, Any]]:
    """The InputDataConfig of a job created outside the launch function (the rail training data)."""
    source = {
        "S3DataType": "S3Prefix",
        "S3Uri": f"s3://{BUCKET}/datasets/rail/train/",
        "S3DataDistributionType": "FullyReplicated",
    }
    return [{"ChannelName": "train", "DataSource": {"S3DataSource": source}}]


def end_job(
    name: str,
    status: str,
    secondary: str = "",
    reason: str = "",
    *,
    training_s: int = 0,
    billable_s: int = 0,
    metrics: dict[str, float] | None = None,
    image: str | None = None,
) -> None:
    """Make the emulated job end as SageMaker would report it in DescribeTrainingJob (``image``:
    as if the job had run another image than the one it was created with)."""
    from moto.sagemaker.models import sagemaker_backends

    job = sagemaker_backends[ACCOUNT][REGION].training_jobs[name]
    if image is not None:
        job.algorithm_specification = {**job.algorithm_specification, "TrainingImage": image}
    job.training_job_status = status
    job.secondary_status = secondary or status
    if reason:
        job.failure_reason = reason
    job.training_time_in_seconds = training_s
    job.billable_time_in_seconds = billable_s
    now = datetime.now(UTC)
    job.final_metric_data_list = [
        {"MetricName": k, "Value": v, "Timestamp": now} for k, v in (metrics or {}).items()
    ]


def state_change_event(
    name: str, status: str, secondary: str = "", reason: str = "", *, tags_as_list: bool = False
) -> dict[str, Any]:
    """The sample state-change event re-aimed at job ``name`` (reason and seconds are *not* in events)."""
    event = load_event("sagemaker_job_completed")
    detail = event["detail"]
    detail["TrainingJobName"] = name
    detail["TrainingJobArn"] = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name}"
    event["resources"] = [detail["TrainingJobArn"]]
    detail["TrainingJobStatus"] = status
    detail["SecondaryStatus"] = secondary or status
    if reason:
        detail["FailureReason"] = reason
    if tags_as_list:
        detail["Tags"] = [{"Key": "spotline:attempt", "Value": name[-2:]}]
    return event


@dataclass
class Recovery:
    """spotline's launch, job-state and relaunch functions wired to one moto account."""

    account: Account
    settings: Settings
    clock: Clock
    ledger: RunLedger
    launcher: TrainingLauncher
    flow: JobStateFlow
    relauncher: Relauncher
    publisher: RunPublisher
    canceller: RunCanceller
    metrics: Metrics
    relaunch_queue_url: str
    events_queue_url: str
    launched: list[str] = field(default_factory=list)

    def drop_config(self, text: str, key: str = "configs/rail.yaml") -> str:
        """Put a config in the drop bucket and run the launch function on its event; returns the run id."""
        put = self.account.s3.put_object(Bucket=BUCKET, Key=key, Body=text.encode())
        event = s3_object_created(
            BUCKET, key, etag=put["ETag"].strip('"'), size=len(text.encode()), version_id=put.get("VersionId")
        )
        from spotline.domain.events import parse_object_created

        outcome = self.launcher.launch_from_object(parse_object_created(event))
        assert outcome.action == "launched", outcome
        assert outcome.run_id is not None
        return outcome.run_id

    def deliver(self, event: dict[str, Any], times: int = 1) -> list[StateOutcome]:
        """The job-state function receiving ``event`` ``times`` times (EventBridge redelivers)."""
        return [self.flow.on_job_ended(parse_training_job_state_change(event)) for _ in range(times)]

    def end(
        self, name: str, status: str, secondary: str = "", reason: str = "", *, times: int = 1, **job: Any
    ) -> list[StateOutcome]:
        end_job(name, status, secondary, reason, **job)
        return self.deliver(state_change_event(name, status, secondary, reason), times)

    def checkpoint(self, run_id: str, iteration: int, *, pointer: bool = True) -> None:
        """What the container's checkpoint at ``iteration`` looks like once SageMaker synced it to S3."""
        prefix = f"runs/{run_id}/checkpoints/"
        name = f"model_{iteration:08d}.pt"
        self.account.s3.put_object(Bucket=BUCKET, Key=prefix + name, Body=b"checkpoint bytes")
        if pointer:
            self.account.s3.put_object(Bucket=BUCKET, Key=prefix + "latest", Body=f"{name}\n".encode())

    def queued_relaunches(self) -> list[tuple[dict[str, Any], int]]:
        """Every message on the relaunch queue with its DelaySeconds, as if the delays had passed."""
        from moto.sqs.models import sqs_backends

        queue = sqs_backends[ACCOUNT][REGION].queues[self.relaunch_queue_url.rsplit("/", 1)[-1]]
        delays = {}
        for message in queue._messages:
            delays[message.id] = (
                round((message.delayed_until - message.sent_timestamp) / 1000) if message.delayed_until else 0
            )
            message.delayed_until = 0
        out = []
        sqs = self.account.sqs
        while True:
            batch = sqs.receive_message(QueueUrl=self.relaunch_queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not batch:
                return out
            for m in batch:
                out.append((json.loads(m["Body"]), delays.get(m["MessageId"], 0)))
                sqs.delete_message(QueueUrl=self.relaunch_queue_url, ReceiptHandle=m["ReceiptHandle"])

    def run_relaunches(self, times: int = 1) -> list[RelaunchOutcome]:
        """Deliver each queued relaunch ``times`` times, with the clock moved to its not_before."""
        outcomes = []
        for body, _delay in self.queued_relaunches():
            self.clock.now = max(self.clock.now, float(body["not_before"]))
            for _ in range(times):
                outcomes.append(self.relauncher.relaunch(RelaunchRequest.from_body(json.dumps(body))))
        return outcomes

    def spotline_events(self) -> list[dict[str, Any]]:
        """The ``spotline`` events put on the bus (drained)."""
        out = []
        sqs = self.account.sqs
        while True:
            batch = sqs.receive_message(QueueUrl=self.events_queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not batch:
                return out
            for m in batch:
                out.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=self.events_queue_url, ReceiptHandle=m["ReceiptHandle"])

    def job(self, name: str) -> dict[str, Any]:
        return dict(self.account.sagemaker.describe_training_job(TrainingJobName=name))

    def job_names(self) -> list[str]:
        jobs = self.account.sagemaker.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
        return sorted(j["TrainingJobName"] for j in jobs)

    def report(self, run_id: str) -> dict[str, Any]:
        body = self.account.s3.get_object(Bucket=BUCKET, Key=f"runs/{run_id}/report.json")["Body"].read()
        return dict(json.loads(body))


def build_recovery(
    account: Account, monkeypatch: pytest.MonkeyPatch, prices_json: str | None = None
) -> Recovery:
    sqs = account.sqs
    relaunch_url = sqs.create_queue(QueueName="spotline-relaunch")["QueueUrl"]
    events_url = sqs.create_queue(QueueName="spotline-events-tap")["QueueUrl"]
    events_arn = sqs.get_queue_attributes(QueueUrl=events_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    account.events.put_rule(Name="spotline-tap", EventPattern=json.dumps({"source": ["spotline"]}))
    account.events.put_targets(Rule="spotline-tap", Targets=[{"Id": "tap", "Arn": events_arn}])
    monkeypatch.setenv("SPOTLINE_RELAUNCH_QUEUE_URL", relaunch_url)
    if prices_json:
        monkeypatch.setenv("SPOTLINE_PRICES", prices_json)
    settings = Settings.from_env()
    clock = Clock()
    metrics = Metrics(namespace=METRICS_NAMESPACE, service="spotline-tests")
    metrics.clear_metrics()
    w = Wiring(settings, clients=account.client, clock=clock, metrics=metrics)
    return Recovery(
        account=account,
        settings=settings,
        clock=clock,
        ledger=w.ledger,
        launcher=w.training_launcher,
        flow=w.job_state,
        relauncher=w.relauncher,
        publisher=w.publisher,
        canceller=w.canceller,
        metrics=metrics,
        relaunch_queue_url=relaunch_url,
        events_queue_url=events_url,
    )


def inbox_by_status(messages: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """SNS envelopes grouped by their ``status`` message attribute."""
    out: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        out.setdefault(m["MessageAttributes"]["status"]["Value"], []).append(m)
    return out
