"""Image intake throughput and CreateTrainingJob calls for 10,000 uploads, against moto (in process).

One run, three measurements:

1. intake: 10,000 image uploads to one folder (plus 10% redelivered, in random order) as SQS
   batches of 100 messages through the real ImageIntakeFunction handler -> image events per second;
2. batching: the real BatchCloserFunction sweep after the settle window -> CreateTrainingJob calls
   (with the default per-job maximum of 5,000 images);
3. baseline: one job per image (a deterministic name per object, so redeliveries are refused by
   SageMaker rather than duplicated) -> CreateTrainingJob calls for the same events.

    .venv/bin/python benchmarks/bench_batching.py
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

IMAGES = 10_000
REDELIVERED = IMAGES // 10
SQS_BATCH = 100
REGION = "eu-west-3"
BUCKET = "spotline-bench"
FOLDER = "rail-2026-11-27"


class Context:
    function_name = "bench"
    memory_limit_in_mb = 1024
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:bench"
    aws_request_id = "bench-request"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def s3_event(key: str, i: int) -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"evt-{i}",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-11-27T09:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:s3:::{BUCKET}"],
        "detail": {
            "version": "0",
            "bucket": {"name": BUCKET},
            "object": {"key": quote_plus(key, safe="/"), "size": 2_400_000, "etag": f"{i:032x}"},
            "reason": "PutObject",
        },
    }


def sqs_batches(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    batches = []
    for start in range(0, len(events), SQS_BATCH):
        records = [
            {
                "messageId": f"m-{start + j}",
                "receiptHandle": f"r-{start + j}",
                "body": json.dumps(e),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:spotline-image-events",
                "awsRegion": REGION,
            }
            for j, e in enumerate(events[start : start + SQS_BATCH])
        ]
        batches.append({"Records": records})
    return batches


def count_calls(client: Any, operation: str) -> list[int]:
    """A counter of ``operation`` calls made through ``client`` (botocore's event hooks)."""
    counter = [0]

    def hook(**_: Any) -> None:
        counter[0] += 1

    client.meta.events.register(f"before-call.sagemaker.{operation}", hook)
    return counter


def count_jobs(client: Any) -> int:
    """Every training job in the emulated account."""
    total = 0
    for page in client.get_paginator("list_training_jobs").paginate(PaginationConfig={"PageSize": 100}):
        total += len(page["TrainingJobSummaries"])
    return total


def main() -> None:
    import boto3
    from moto import mock_aws

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION
    )
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER"):
        os.environ.pop(name, None)
    with mock_aws():
        from spotline.adapters import aws
        from spotline.ledger.models import Models
        from spotline.ledger.records import Promotion
        from spotline.ledger.table import LedgerTable
        from tests.support.aws_account import create_ledger_table

        aws.reset_clients()
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        create_ledger_table(boto3.client("dynamodb", region_name=REGION), "bench-ledger")
        topic = boto3.client("sns", region_name=REGION).create_topic(Name="bench")["TopicArn"]
        os.environ.update(
            SPOTLINE_BUCKET=BUCKET,
            SPOTLINE_TABLE="bench-ledger",
            SPOTLINE_TOPIC_ARN=topic,
            SPOTLINE_IMAGE_URI="123456789012.dkr.ecr.eu-west-3.amazonaws.com/spotline:bench",
            SPOTLINE_EXECUTION_ROLE_ARN="arn:aws:iam::123456789012:role/bench",
            SPOTLINE_JOB_PREFIX="spotline",
            SPOTLINE_BATCH_SETTLE_SECONDS="0",  # the sweep below comes "after" the window
            POWERTOOLS_METRICS_NAMESPACE="Spotline",
            POWERTOOLS_LOG_LEVEL="WARNING",
        )
        Models(LedgerTable("bench-ledger")).promote(
            Promotion(
                run_id="rail-000000000000",
                model_artifact=f"s3://{BUCKET}/runs/rail/output/j/output/model.tar.gz",
            ),
            order="0",
        )
        keys = [f"inference/{FOLDER}/km-{i // 500:03d}/IMG_{i:05d}.jpg" for i in range(IMAGES)]
        rng = random.Random(0)
        indices = list(range(IMAGES)) + rng.sample(range(IMAGES), REDELIVERED)
        rng.shuffle(indices)
        events = [s3_event(keys[i], i) for i in indices]

        intake = importlib.import_module("handlers.image_intake")
        closer = importlib.import_module("handlers.batch_closer")
        sagemaker = aws.client("sagemaker")
        batched_calls = count_calls(sagemaker, "CreateTrainingJob")

        failures = 0
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # EMF metric lines
            for batch in sqs_batches(events):
                failures += len(intake.handler(batch, Context())["batchItemFailures"])
        intake_s = time.perf_counter() - start
        with contextlib.redirect_stdout(io.StringIO()):
            closed = closer.handler({"detail-type": "Scheduled Event", "detail": {}}, Context())
        jobs = sagemaker.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]

        # Baseline: one job per image event, named from the object so duplicates are refused.
        baseline = boto3.client("sagemaker", region_name=REGION)
        baseline_calls = count_calls(baseline, "CreateTrainingJob")
        from spotline.domain.model_choice import ModelChoice, ModelSource
        from spotline.domain.naming import run_id_for_object
        from spotline.domain.settings import Settings
        from spotline.inference.launch import inference_request

        settings = Settings.from_env()
        model = ModelChoice(
            uri=f"s3://{BUCKET}/runs/rail/output/j/output/model.tar.gz", source=ModelSource.PROMOTED
        )
        start = time.perf_counter()
        for event in events:
            key = event["detail"]["object"]["key"]
            run_id = run_id_for_object(BUCKET, key, event["detail"]["object"]["etag"], kind="per-image")
            request = inference_request(
                settings=settings,
                run_id=run_id,
                batch=FOLDER,
                manifest_uri=f"s3://{BUCKET}/{key}",
                model=model,
            )
            with contextlib.suppress(baseline.exceptions.ResourceInUse):  # SageMaker refuses a taken name
                baseline.create_training_job(**request)
        baseline_s = time.perf_counter() - start
        # moto keeps one job per name (a taken name replaces it), as SageMaker keeps the first one.
        baseline_jobs = count_jobs(baseline) - len(jobs)

    print(
        f"uploads: {IMAGES:,} images in one folder, {REDELIVERED:,} redelivered, random order, "
        f"SQS batches of {SQS_BATCH}"
    )
    print(
        f"intake:   {len(events):,} image events in {intake_s:.1f} s = "
        f"{len(events) / intake_s:,.0f} events/s ({failures} failed), moto in process"
    )
    print(f"closer:   {closed}")
    print(f"{'':26}{'batched':>12}{'one per image':>16}")
    print(f"{'CreateTrainingJob calls':26}{batched_calls[0]:>12,}{baseline_calls[0]:>16,}")
    print(f"{'training jobs created':26}{len(jobs):>12,}{baseline_jobs:>16,}")
    print(
        f"{'images per job':26}{IMAGES / max(1, len(jobs)):>12,.0f}{IMAGES / max(1, baseline_jobs):>16,.0f}"
    )
    print(
        f"(baseline launch loop alone: {baseline_s:.1f} s against moto; "
        "on SageMaker each job adds minutes of start-up)"
    )


if __name__ == "__main__":
    main()
