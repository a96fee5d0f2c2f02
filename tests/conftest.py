"""Shared fixtures: an emulated AWS account (moto) with spotline's bucket, table, topic and an inbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support.aws_account import (
    BUCKET,
    IMAGE_URI,
    JOB_PREFIX,
    KMS_KEY_ARN,
    REGION,
    ROLE_ARN,
    TABLE,
    Account,
    Inbox,
    create_ledger_table,
    seed_datasets,
)

TESTS = Path(__file__).resolve().parent

# Property tests are part of `make test`: a bounded number of examples, the same ones every run.
settings.register_profile("spotline", max_examples=60, derandomize=True, deadline=None, print_blob=True)
settings.load_profile("spotline")


# Modules whose tests share one costly module fixture (a SAM build, a wheel, the GPU check's CPU
# run): each runs on one worker, so the fixture is built once, not once per worker.
SHARED_FIXTURE_MODULES = (
    TESTS / "packaging" / "test_sam_build.py",
    TESTS / "packaging" / "test_wheel.py",
    TESTS / "container" / "test_gpu_check.py",
    TESTS / "integration" / "test_publish_bounds.py",
)


def pytest_itemcollected(item: pytest.Item) -> None:
    """The end-to-end tests share one local stack (a package fixture): one worker runs them all.

    The tests of :data:`SHARED_FIXTURE_MODULES` stay together the same way. Marked as each test
    is collected, before xdist reads the groups (``tests/unit/test_worker_groups.py`` checks that
    the pinned pytest and pytest-xdist still honour them).
    """
    if item.path.is_relative_to(TESTS / "e2e"):
        item.add_marker(pytest.mark.xdist_group("e2e"))
    elif item.path in SHARED_FIXTURE_MODULES:
        item.add_marker(pytest.mark.xdist_group(item.path.stem))


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


@pytest.fixture
def account(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Account]:
    """spotline's resources in a moto account; the functions' environment is set as the template sets it."""
    import boto3
    from moto import mock_aws

    from spotline.adapters import aws

    with mock_aws():
        aws.reset_clients()
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        seed_datasets(s3)
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
