"""Latency of the job-state handler over 200 state-change events, against moto (in process).

Setup (not timed): 200 runs launched from config drops by the real launch function. Timed: the
job-state handler on one terminal event per run — a mix of completions (report, promotion,
SNS, EventBridge), capacity failures and interruptions (relaunch planned and queued), and user
errors — then the same events again (duplicates). Prints median and p99 in milliseconds, and the
training jobs, SNS messages and queued relaunches counted before and after the redelivery.

    .venv/bin/python benchmarks/bench_job_state.py
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

EVENTS = 200
REGION = "eu-west-3"
BUCKET = "spotline-bench"
CONFIG = """\
job:
  instance_type: ml.g4dn.xlarge
  fallback_instance_types: [ml.g5.xlarge]
  max_runtime: 1h
  channels:
    train: datasets/rail/train
promote:
  metric: val/mAP50
  min: 0.6
"""
ENDINGS: list[tuple[str, str, str]] = [
    ("Completed", "Completed", ""),
    (
        "Failed",
        "Failed",
        "CapacityError: Unable to provision requested ML compute capacity. "
        "Please retry using a different ML instance type.",
    ),
    ("Stopped", "MaxWaitTimeExceeded", ""),
    ("Failed", "Failed", "AlgorithmError: ExecuteUserScriptError:\nExitCode 1"),
]


class Context:
    function_name = "JobStateFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:JobStateFunction"
    aws_request_id = "00000000-0000-4000-8000-000000000000"


def setup_account() -> dict[str, str]:
    import boto3

    from tests.support.aws_account import create_ledger_table

    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    create_ledger_table(boto3.client("dynamodb", region_name=REGION), "spotline-bench")
    sns = boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name="spotline-bench")["TopicArn"]
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="spotline-relaunch")["QueueUrl"]
    inbox = sqs.create_queue(QueueName="spotline-bench-inbox")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]
    inbox_arn = attributes["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn)
    return {
        "BENCH_INBOX_URL": inbox,
        "SPOTLINE_BUCKET": BUCKET,
        "SPOTLINE_TABLE": "spotline-bench",
        "SPOTLINE_TOPIC_ARN": topic,
        "SPOTLINE_IMAGE_URI": f"123456789012.dkr.ecr.{REGION}.amazonaws.com/spotline:bench",
        "SPOTLINE_EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/spotline-bench",
        "SPOTLINE_JOB_PREFIX": "spotline",
        "SPOTLINE_RELAUNCH_QUEUE_URL": queue,
        "POWERTOOLS_METRICS_NAMESPACE": "Spotline",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }


def outcomes_so_far() -> dict[str, int]:
    """What exists in the emulated account: training jobs, SNS messages delivered, relaunches queued."""
    import boto3

    sagemaker = boto3.client("sagemaker", region_name=REGION)
    jobs = 0
    kwargs: dict[str, Any] = {"MaxResults": 100}
    while True:
        page = sagemaker.list_training_jobs(**kwargs)
        jobs += len(page["TrainingJobSummaries"])
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    sqs = boto3.client("sqs", region_name=REGION)

    def queued(url: str) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return sum(int(attributes.get(n, 0)) for n in names)

    return {
        "training jobs": jobs,
        "SNS messages": queued(os.environ["BENCH_INBOX_URL"]),
        "relaunches queued": queued(os.environ["SPOTLINE_RELAUNCH_QUEUE_URL"]),
    }


def launch_runs(count: int) -> list[str]:
    import boto3

    from spotline.domain.events import parse_object_created
    from spotline.domain.settings import Settings
    from spotline.wiring import Wiring
    from tests.support.events import s3_object_created

    launcher = Wiring(Settings.from_env()).training_launcher
    s3 = boto3.client("s3", region_name=REGION)
    names = []
    for i in range(count):
        key = f"configs/bench-{i:03d}.yaml"
        put = s3.put_object(Bucket=BUCKET, Key=key, Body=CONFIG.encode())
        event = s3_object_created(
            BUCKET, key, etag=put["ETag"].strip('"'), size=len(CONFIG), version_id=put["VersionId"]
        )
        outcome = launcher.launch_from_object(parse_object_created(event))
        names.append(str(outcome.job_name))
    return names


def main() -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        os.environ[name] = value
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER"):
        os.environ.pop(name, None)
    import warnings

    from moto import mock_aws

    warnings.simplefilter("ignore")
    with mock_aws():
        os.environ.update(setup_account())
        from tests.support.events import load_event
        from tests.support.recovery import end_job

        names = launch_runs(EVENTS)
        events: list[dict[str, Any]] = []
        for i, name in enumerate(names):
            status, secondary, reason = ENDINGS[i % len(ENDINGS)]
            end_job(
                name, status, secondary, reason, training_s=3600, billable_s=1100, metrics={"val/mAP50": 0.7}
            )
            event = load_event("sagemaker_job_completed")
            event["detail"].update(TrainingJobName=name, TrainingJobStatus=status, SecondaryStatus=secondary)
            events.append(event)

        handler = importlib.import_module("handlers.job_state").handler
        actions: dict[str, int] = {}
        first: list[float] = []
        again: list[float] = []
        counts: list[dict[str, int]] = []
        for timings in (first, again):
            counts.append(outcomes_so_far())
            for event in events:
                with contextlib.redirect_stdout(io.StringIO()):  # EMF lines: CloudWatch reads them, we do not
                    start = time.perf_counter()
                    result = handler(event, Context())
                    timings.append((time.perf_counter() - start) * 1000)
                actions[result["action"]] = actions.get(result["action"], 0) + 1
        counts.append(outcomes_so_far())

    def p99(values: list[float]) -> float:
        return statistics.quantiles(values, n=100)[98]

    print(f"job-state handler, {EVENTS} events against moto (in process), then the same {EVENTS} again")
    print(f"  first delivery : median {statistics.median(first):7.2f} ms   p99 {p99(first):7.2f} ms")
    print(f"  redelivery     : median {statistics.median(again):7.2f} ms   p99 {p99(again):7.2f} ms")
    print(f"  outcomes       : {json.dumps(dict(sorted(actions.items())))}")
    for what in counts[0]:
        before, after_first, after_again = (c[what] for c in counts)
        extra = after_again - after_first
        print(f"  {what:<17}: {before} before, {after_first} after first delivery, {extra:+d} on redelivery")


if __name__ == "__main__":
    main()
