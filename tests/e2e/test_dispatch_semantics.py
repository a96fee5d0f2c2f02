"""The dispatcher invokes functions as Lambda would: SQS batches with partial failures and redrive,
asynchronous retries then the OnFailure queue, schedules. A small template of its own drives it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from spotline_local.stack import LocalStack, StackOptions
from tests.e2e import dispatch_handlers
from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.slow

TEMPLATE = Path(__file__).with_name("dispatch-template.yaml")


@pytest.fixture(scope="module")
def small_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = LocalStack(
        StackOptions(
            workdir=tmp_path_factory.mktemp("dispatch"),
            template=TEMPLATE,
            stack_name="dispatch",
            schedule_period_s=0.5,
            retry_delay_s=0.1,
        )
    )
    stack.start_services()
    try:
        dispatch_handlers.CLIENTS["s3"] = stack.clients("s3")
        stack.start_functions()
        yield stack
    finally:
        stack.stop()


def keys(stack: LocalStack, prefix: str) -> list[str]:
    listing = stack.clients("s3").list_objects_v2(Bucket=dispatch_handlers.BUCKET, Prefix=prefix)
    return [o["Key"] for o in listing.get("Contents", [])]


def bodies(stack: LocalStack, queue: str) -> list[str]:
    sqs = stack.clients("sqs")
    got = sqs.receive_message(
        QueueUrl=stack.provisioned.queues[queue], MaxNumberOfMessages=10, WaitTimeSeconds=1
    )
    return sorted(m["Body"] for m in got.get("Messages", []))


def test_batches_keep_their_size_and_only_reported_failures_are_redelivered(small_stack: LocalStack) -> None:
    sqs = small_stack.clients("sqs")
    url = small_stack.provisioned.queues["WorkQueue"]
    sent = [f"good-{i}" for i in range(6)] + ["bad-1", "bad-2"]
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(sent)]
    )

    dead = wait_for(
        "the bad records in the dead-letter queue", lambda: bodies(small_stack, "WorkDLQ") or None
    )
    assert dead == ["bad-1", "bad-2"]
    seen = keys(small_stack, "batches/")
    good = [k for k in seen if "/good-" in k]
    assert sorted(k.rsplit("/", 1)[1] for k in good) == sorted(b for b in sent if b.startswith("good"))
    assert all(int(k.split("/")[2]) <= 5 for k in seen)  # never more than BatchSize records
    bad_deliveries = [k for k in seen if "/bad-" in k]
    assert len(bad_deliveries) == 4  # each bad record twice (maxReceiveCount 2), then the DLQ
    assert bodies(small_stack, "WorkQueue") == []


def test_a_failing_async_invocation_is_retried_then_sent_to_on_failure(small_stack: LocalStack) -> None:
    event_id = small_stack.clients("events").put_events(
        Entries=[{"Source": "e2e.test", "DetailType": "Probe", "Detail": json.dumps({"n": 1})}]
    )["Entries"][0]["EventId"]
    failed = wait_for("the event on the OnFailure queue", lambda: bodies(small_stack, "FailureQueue") or None)
    assert json.loads(failed[0])["id"] == event_id
    assert len(keys(small_stack, f"attempts/{event_id}/")) == 2  # the first try and MaximumRetryAttempts: 1


def test_a_schedule_invokes_its_function_every_period(small_stack: LocalStack) -> None:
    def three_ticks() -> list[str] | None:
        ticks = keys(small_stack, "ticks/Scheduled Event/")
        return ticks if len(ticks) >= 3 else None

    assert len(wait_for("three scheduled invocations", three_ticks)) >= 3
