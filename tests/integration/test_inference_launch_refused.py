"""A part SageMaker refuses is alerted once, even when the first try to send that alert fails."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from spotline.adapters.notifier import Notifier
from spotline.adapters.training_jobs import JobRequestRejected, TrainingJobs
from spotline.domain.states import RunStatus
from spotline.inference.closer import BatchCloseError
from tests.support.aws_account import BUCKET, Account
from tests.support.batches import feed, image_event, pipeline, promote, settings_for


class _RefusingJobs(TrainingJobs):
    """SageMaker refuses every request (an instance type the account does not offer)."""

    def create(self, request: Mapping[str, Any]) -> str:
        raise JobRequestRejected("ValidationException", "instance type not supported in this region")

    def exists(self, name: str) -> bool:
        return False


class _FailsOnce(Notifier):
    """SNS is briefly unreachable: the first publish raises, later ones go through."""

    def __init__(self, inner: Notifier) -> None:
        super().__init__(inner.topic_arn, inner.event_bus, sns=inner.sns, events=inner.events)
        self.failures_left = 1

    def publish(self, subject: str, body: Mapping[str, Any], attributes: Mapping[str, str]) -> str:
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("SNS unreachable")
        return super().publish(subject, body, attributes)


def test_a_refused_part_is_alerted_after_its_first_alert_failed(account: Account) -> None:
    p = pipeline(account, settings_for(account))
    promote(p.table)
    launcher = p.closer.inference_launcher
    launcher.jobs = _RefusingJobs()
    launcher.notifier = _FailsOnce(launcher.notifier)
    feed(p, [image_event(f"inference/rail-2026-11-27/IMG {i:03d}.jpg") for i in range(3)])
    p.clock.advance(121)

    with pytest.raises(BatchCloseError, match="SNS unreachable"):
        p.closer.close_due_batches()
    p.clock.advance(60)
    [outcome] = p.closer.close_due_batches()  # the next minute's sweep
    p.clock.advance(60)
    assert p.closer.close_due_batches() == []  # nothing left to do, nothing sent twice

    [part] = outcome.runs
    assert part.action == "failed"
    run = p.ledger.get_run(part.run_id)
    assert run is not None and run.status == RunStatus.FAILED
    subjects = [m["Subject"] for m in account.inbox.messages()]
    assert subjects == ["spotline: inference for rail-2026-11-27 could not start"]
    # the batch settled without it: no result, every image named as missing, and why
    body = account.s3.get_object(Bucket=BUCKET, Key="results/rail-2026-11-27/summary.json")["Body"].read()
    summary = json.loads(body)
    assert (summary["status"], summary["images"], summary["missing_images"]) == ("FAILED", 0, 3)
    assert summary["missing"] == [f"IMG {i:03d}.jpg" for i in range(3)]
    assert "instance type not supported" in summary["missing_parts"][0]["reason"]
