"""The emulated AWS account the tests run against: the names of spotline's resources in it, the
ledger table as the template declares it, and an inbox subscribed to the alert topic."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

REGION = "eu-west-3"
ACCOUNT = "123456789012"
BUCKET = "spotline-drop-123456789012"
TABLE = "spotline-ledger"
JOB_PREFIX = "spotline"
IMAGE_URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/spotline:1.0.0"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/spotline-sagemaker-execution"
KMS_KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


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

    def client(self, service: str) -> Any:
        """The account's client for ``service`` (what :class:`spotline.wiring.Wiring` takes)."""
        clients = {
            "s3": self.s3,
            "dynamodb": self.dynamodb,
            "sns": self.sns,
            "sqs": self.sqs,
            "events": self.events,
            "sagemaker": self.sagemaker,
        }
        return clients[service]


# The smallest COCO file spotline's image loads: what the launch function checks a channel holds.
TINY_COCO = {
    "images": [{"id": 1, "file_name": "images/a.png", "width": 64, "height": 64}],
    "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 8, 8], "iscrowd": 0}],
    "categories": [{"id": 1, "name": "rail_crack"}],
}
DATASET_PREFIXES = ("datasets/rail/train/", "datasets/rail/val/", "datasets/x/", "datasets/y/")


def seed_datasets(s3: Any, bucket: str = BUCKET, prefixes: tuple[str, ...] = DATASET_PREFIXES) -> None:
    """A tiny labelled dataset under each of ``prefixes``, as a user would have uploaded before a config."""
    for prefix in prefixes:
        s3.put_object(Bucket=bucket, Key=f"{prefix}annotations.json", Body=json.dumps(TINY_COCO).encode())
        s3.put_object(Bucket=bucket, Key=f"{prefix}images/a.png", Body=b"\x89PNG\r\n\x1a\n")
