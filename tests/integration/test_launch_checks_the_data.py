"""No job is started that can only fail for want of its data: each problem names the S3 prefix."""

from __future__ import annotations

import json

import pytest

from tests.support.aws_account import BUCKET, Account
from tests.support.launch import job_names, launch, put_config

CONFIG = "job:\n  channels: {{train: {train}, val: datasets/rail/val/}}\n"


def _rejection(account: Account, key: str, train: str) -> tuple[str, list[dict[str, str]]]:
    jobs = job_names(account)
    account.inbox.messages()  # earlier alerts
    outcome = launch(account, put_config(account, key, CONFIG.format(train=train)))
    assert outcome.action == "rejected", outcome
    assert job_names(account) == jobs  # nothing paid for
    [alert] = account.inbox.messages()
    return outcome.reason, json.loads(alert["Message"])["errors"]


def test_an_empty_prefix_is_refused_naming_the_s3_prefix(account: Account) -> None:
    reason, errors = _rejection(account, "configs/empty.yaml", "datasets/not-uploaded-yet/")
    assert [e["key"] for e in errors] == ["job.channels.train"]
    assert f"s3://{BUCKET}/datasets/not-uploaded-yet/ holds no objects" in reason
    assert "/opt/ml" not in reason


@pytest.mark.parametrize(
    ("annotations", "says"),
    [
        (None, "annotations.json is missing"),
        (b"", "annotations.json is empty"),
        (b"\xff\xfe not json", "is not JSON"),
        (json.dumps({"images": [], "annotations": [], "categories": []}).encode(), "lists no images"),
        (
            json.dumps({"images": [{"id": 1}], "annotations": [], "categories": []}).encode(),
            "needs id, file_name",
        ),
        (json.dumps([1, 2]).encode(), "is not a JSON object"),
        (json.dumps({"images": [{"id": 1}]}).encode(), "lacks the COCO list(s) annotations, categories"),
    ],
)
def test_train_annotations_must_be_coco_the_image_can_load(
    account: Account, annotations: bytes | None, says: str
) -> None:
    prefix = "datasets/half-uploaded/"
    account.s3.put_object(Bucket=BUCKET, Key=f"{prefix}images/a.png", Body=b"png")
    if annotations is not None:
        account.s3.put_object(Bucket=BUCKET, Key=f"{prefix}annotations.json", Body=annotations)
    reason, _ = _rejection(account, "configs/half.yaml", prefix)
    assert f"s3://{BUCKET}/{prefix}annotations.json" in reason and says in reason


def test_a_large_annotations_file_is_checked_from_its_start_only(account: Account) -> None:
    prefix = "datasets/big/"
    body = b'{"images": [' + b'{"id": 1, "file_name": "a.png", "width": 8, "height": 8},' * 200_000 + b"{}]}"
    account.s3.put_object(Bucket=BUCKET, Key=f"{prefix}annotations.json", Body=body)
    outcome = launch(account, put_config(account, "configs/big.yaml", CONFIG.format(train=prefix)))
    assert len(body) > 8 * 1024 * 1024 and outcome.action == "launched", outcome
    account.s3.put_object(Bucket=BUCKET, Key=f"{prefix}annotations.json", Body=b"<html>" + b" " * 9_000_000)
    reason, _ = _rejection(account, "configs/big-html.yaml", prefix)
    assert "is not a JSON object" in reason
