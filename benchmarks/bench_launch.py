"""Launch function: cold start against plain boto3, and warm latency over 200 events (moto).

    .venv/bin/python benchmarks/bench_launch.py

Prints medians, the cold-start ratio (target <= 1.5x) and the warm median / p99.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

ENV = {
    "SPOTLINE_BUCKET": "spotline-drop-123456789012",
    "SPOTLINE_TABLE": "spotline-ledger",
    "SPOTLINE_TOPIC_ARN": "arn:aws:sns:eu-west-3:123456789012:spotline-alerts",
    "SPOTLINE_IMAGE_URI": "123456789012.dkr.ecr.eu-west-3.amazonaws.com/spotline:1.0.0",
    "SPOTLINE_EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/spotline-sagemaker-execution",
    "SPOTLINE_JOB_PREFIX": "spotline",
    "AWS_DEFAULT_REGION": "eu-west-3",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "POWERTOOLS_METRICS_NAMESPACE": "Spotline",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}
COLD_HANDLER = "import handlers.launch; from spotline.adapters import aws; aws.client('s3')"
COLD_BOTO3 = "import boto3; boto3.client('s3')"
TIMER = (
    "import time, sys; t = time.perf_counter(); exec(sys.argv[1]); "
    "sys.stdout.write(repr(time.perf_counter() - t))"
)  # fmt: skip


def cold(code: str) -> float:
    env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT / "functions")}
    out = subprocess.run(
        [sys.executable, "-c", TIMER, code], env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout)


def bench_cold(rounds: int = 15) -> None:
    handler, plain = [], []
    for _ in range(rounds):  # interleaved, so drift hits both sides alike
        handler.append(cold(COLD_HANDLER))
        plain.append(cold(COLD_BOTO3))
    h, p = statistics.median(handler), statistics.median(plain)
    print(f"cold start, median of {rounds} fresh interpreters:")
    print(f"  import boto3 + one client         {p * 1000:7.1f} ms")
    print(f"  import launch handler + one client {h * 1000:7.1f} ms")
    print(f"  ratio                              {h / p:7.2f}x   (target <= 1.50x)")


def bench_warm(events: int = 200) -> None:
    os.environ.update(ENV)
    import boto3
    from moto import mock_aws

    from tests.support.aws_account import create_ledger_table
    from tests.support.events import s3_object_created

    with mock_aws():
        region = ENV["AWS_DEFAULT_REGION"]
        s3 = boto3.client("s3", region_name=region)
        bucket = ENV["SPOTLINE_BUCKET"]
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
        create_ledger_table(boto3.client("dynamodb", region_name=region))
        topic = boto3.client("sns", region_name=region).create_topic(Name="spotline-alerts")["TopicArn"]
        os.environ["SPOTLINE_TOPIC_ARN"] = topic
        import handlers.launch as module

        class Context:
            function_name = "LaunchFunction"
            memory_limit_in_mb = 512
            invoked_function_arn = "arn:aws:lambda:eu-west-3:123456789012:function:LaunchFunction"
            aws_request_id = "bench"

        config = b"job:\n  channels: {train: datasets/rail/train/}\n"
        prepared = []
        for i in range(events):
            key = f"configs/bench-{i:04d}.yaml"
            etag = s3.put_object(Bucket=bucket, Key=key, Body=config)["ETag"].strip('"')
            prepared.append(s3_object_created(bucket, key, etag=etag, size=len(config)))
        latencies = []
        with contextlib.redirect_stdout(io.StringIO()):  # the handler's EMF metric lines
            module.handler(prepared[0], Context())  # the first call builds the clients: not a warm call
            for event in prepared[1:]:
                t = time.perf_counter()
                result = module.handler(event, Context())
                latencies.append(time.perf_counter() - t)
                assert result["action"] == "launched", result
        latencies.sort()
        p99 = latencies[int(0.99 * (len(latencies) - 1))]
        print(f"warm handler against moto, {len(latencies)} events (each a new config -> a new job):")
        print(f"  median {statistics.median(latencies) * 1000:6.1f} ms   p99 {p99 * 1000:6.1f} ms")


if __name__ == "__main__":
    bench_cold()
    bench_warm()
