"""Shared fixtures: an emulated AWS account (moto) with spotline's bucket, table, topic and an inbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

REGION = "eu-west-3"
ACCOUNT = "123456789012"
BUCKET = "spotline-drop-123456789012"
TABLE = "spotline-ledger"
JOB_PREFIX = "spotline"
IMAGE_URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/spotline:1.0.0"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/spotline-sagemaker-execution"
KMS_KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region, so nothing can reach a real account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER"):
        monkeypatch.delenv(name, raising=False)


def create_ledger_table(dynamodb: Any, name: str = TABLE) -> None:
    """The ledger table with the key schema and index the template declares."""
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "gsi1pk", "gsi1sk")
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "gsi1",
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )


@dataclass
class Inbox:
    """An SQS queue subscribed to the alert topic: what subscribers would receive."""

    sqs: Any
    url: str

    def messages(self) -> list[dict[str, Any]]:
        """Every SNS envelope delivered so far (drains the queue)."""
        out: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return out
            for m in batch:
                out.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])


@dataclass
class Account:
    """Clients of the emulated account and the names of spotline's resources in it."""

    s3: Any
    dynamodb: Any
    sns: Any
    sqs: Any
    events: Any
    sagemaker: Any
    topic_arn: str
    inbox: Inbox
    env: dict[str, str]


@pytest.fixture
def account(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Account]:
    """spotline's resources in a moto account; the functions' environment is set as the template sets it."""
    import boto3
    from moto import mock_aws

    from spotline import aws

    with mock_aws():
        aws.reset_clients()
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_ledger_table(dynamodb)
        sns = boto3.client("sns", region_name=REGION)
        topic_arn = sns.create_topic(Name="spotline-alerts")["TopicArn"]
        sqs = boto3.client("sqs", region_name=REGION)
        inbox_url = sqs.create_queue(QueueName="alert-inbox")["QueueUrl"]
        inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=inbox_arn)
        env = {
            "SPOTLINE_BUCKET": BUCKET,
            "SPOTLINE_TABLE": TABLE,
            "SPOTLINE_TOPIC_ARN": topic_arn,
            "SPOTLINE_EVENT_BUS": "default",
            "SPOTLINE_IMAGE_URI": IMAGE_URI,
            "SPOTLINE_EXECUTION_ROLE_ARN": ROLE_ARN,
            "SPOTLINE_JOB_PREFIX": JOB_PREFIX,
            "SPOTLINE_KMS_KEY_ARN": KMS_KEY_ARN,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield Account(
            s3=s3,
            dynamodb=dynamodb,
            sns=sns,
            sqs=sqs,
            events=boto3.client("events", region_name=REGION),
            sagemaker=boto3.client("sagemaker", region_name=REGION),
            topic_arn=topic_arn,
            inbox=Inbox(sqs, inbox_url),
            env=env,
        )
        aws.reset_clients()
