"""Every alert is delivered, once, and fits: SNS refuses a message over 262,144 bytes (attributes
included), so a file with thousands of bad values still gets one readable alert, a bounded
rejection.json, and a run item the ledger can hold; concurrent duplicate deliveries of a job's end
send one message and emit the run's metrics once."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from spotline.adapters.notifier import MAX_MESSAGE_BYTES, SNS_MAX_MESSAGE_BYTES
from spotline.domain import layout
from spotline.domain.events import parse_object_created
from spotline.domain.states import RunStatus
from spotline.ledger.notices import NoticeBox
from spotline.ledger.runs import RunLedger
from spotline.training.launch import MAX_REPORTED_ISSUES, MAX_SUMMARIZED_ISSUES
from tests.support.aws_account import BUCKET, Account
from tests.support.events import s3_object_created
from tests.support.launch import make_launcher
from tests.support.recovery import Recovery, end_job, rail_config, state_change_event

GOOD_JOB = "job:\n  channels: {train: datasets/rail/train/}\n"
MAX_REPORT_BYTES = MAX_REPORTED_ISSUES * 2_100 + 10_000  # four fields of at most 500 characters each


def _message_bytes(envelope: dict[str, Any]) -> int:
    """What SNS counts: the body, the subject and every attribute's name, type and value."""
    attributes = envelope.get("MessageAttributes", {})
    return (
        len(envelope["Message"].encode())
        + len(envelope.get("Subject", "").encode())
        + sum(len(k) + len(v["Type"]) + len(str(v["Value"]).encode()) for k, v in attributes.items())
    )


def _reject(account: Account, text: str, key: str = "configs/hostile.yaml") -> tuple[str, dict[str, Any]]:
    data = text.encode()
    put = account.s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    event = s3_object_created(
        BUCKET, key, etag=put["ETag"].strip('"'), size=len(data), version_id=put["VersionId"]
    )
    outcome = make_launcher(account).launch_from_object(parse_object_created(event))
    assert outcome.action == "rejected", outcome
    assert outcome.run_id is not None
    [alert] = account.inbox.messages()
    return outcome.run_id, alert


def _rejection_report(account: Account, run_id: str) -> tuple[int, dict[str, Any]]:
    body = account.s3.get_object(Bucket=BUCKET, Key=layout.run_rejection_key(run_id))["Body"].read()
    return len(body), json.loads(body)


def test_a_76_kb_config_of_thousands_of_bad_values_gets_one_alert_that_fits(account: Account) -> None:
    steps = ", ".join(["-1"] * 19_000)  # 19,000 values under the minimum: one issue each
    text = GOOD_JOB + f"solver:\n  steps: [{steps}]\n"
    assert len(text.encode()) > 76_000

    run_id, alert = _reject(account, text)

    assert _message_bytes(alert) <= MAX_MESSAGE_BYTES < SNS_MAX_MESSAGE_BYTES
    body = json.loads(alert["Message"])
    assert body["report"] == f"s3://{BUCKET}/{layout.run_rejection_key(run_id)}"
    assert body["errors_total"] >= 19_000
    shown = len(body["errors"])
    assert 1 <= shown <= 100
    assert shown + body["errors_not_shown"] == body["errors_total"]  # the first issues, and the rest counted
    assert "19" in alert["Subject"] and len(alert["Subject"]) <= 100

    size, report = _rejection_report(account, run_id)
    assert size <= MAX_REPORT_BYTES
    assert len(report["errors"]) == MAX_REPORTED_ISSUES
    assert report["errors_total"] == body["errors_total"]
    assert report["errors_not_shown"] == report["errors_total"] - MAX_REPORTED_ISSUES

    run = make_launcher(account).ledger.get_run(run_id)
    assert run is not None and run.status == RunStatus.REJECTED
    assert len(run.errors) == MAX_SUMMARIZED_ISSUES + 1 and "more" in run.errors[-1]


def test_one_long_anchor_and_32_aliases_get_one_alert_that_fits(account: Account) -> None:
    anchor = "x" * 7_500
    aliases = "".join(f"  extra_{i}: *long\n" for i in range(32))
    text = f"long: &long '{anchor}'\n" + GOOD_JOB + aliases
    assert len(text.encode()) < 8_500

    run_id, alert = _reject(account, text)

    assert _message_bytes(alert) <= MAX_MESSAGE_BYTES
    body = json.loads(alert["Message"])
    assert body["errors_total"] == 33  # 32 unknown job keys and the unknown top-level 'long'
    assert all(len(e["value"]) <= 500 for e in body["errors"])
    size, _ = _rejection_report(account, run_id)
    assert size < 100_000


def test_a_huge_key_name_and_value_are_cut_in_the_alert_and_the_report(account: Account) -> None:
    text = GOOD_JOB + f"{'k' * 200_000}: {'v' * 50_000}\n"
    run_id, alert = _reject(account, text)
    assert _message_bytes(alert) <= MAX_MESSAGE_BYTES
    size, report = _rejection_report(account, run_id)
    (error,) = report["errors"]
    assert len(error["key"]) <= 500 and len(error["value"]) <= 500 and size < 10_000


def test_two_concurrent_completed_deliveries_send_one_message_and_emit_metrics_once(
    recovery: Recovery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both deliveries find the notice unclaimed (the interleaving that lost the old code its
    metrics); the second then runs to its end: only the send-once claim stands between them."""
    run_id = recovery.drop_config(rail_config())
    name = f"spotline-{run_id}-a01"
    end_job(name, "Completed", training_s=1200, billable_s=400, metrics={"val/mAP50": 0.7})
    event = state_change_event(name, "Completed")

    # The first delivery reads the run (RUNNING) and pauses; the second settles it and reaches the
    # send-once check; the first resumes, finds the run settled and passes the check too (nothing
    # was sent yet), sends, and ends; then the second resumes. One thread talks to the emulator at
    # a time (moto is not thread-safe): the order is forced, not left to luck.
    first_read, second_checked, first_done = threading.Event(), threading.Event(), threading.Event()
    original_get_run, original_claimed = RunLedger.get_run, NoticeBox.claimed
    paused = set()

    def get_run_then_pause(self: RunLedger, run_id: str) -> Any:
        run = original_get_run(self, run_id)
        if threading.current_thread().name == "first" and not paused:
            paused.add(True)
            first_read.set()
            assert second_checked.wait(timeout=60)
        return run

    def claimed_then_pause(self: NoticeBox, what: str) -> bool:
        result = original_claimed(self, what)
        if what == "succeeded" and threading.current_thread().name == "second":
            assert not result  # nothing sent yet: the old code emitted the metrics from here on
            second_checked.set()
            assert first_done.wait(timeout=60)
        return result

    monkeypatch.setattr(RunLedger, "get_run", get_run_then_pause)
    monkeypatch.setattr(NoticeBox, "claimed", claimed_then_pause)
    outcomes: dict[str, Any] = {}

    def deliver(label: str) -> None:
        outcomes[label] = recovery.deliver(event)[0]
        if label == "first":
            first_done.set()

    first = threading.Thread(target=deliver, args=("first",), name="first")
    second = threading.Thread(target=deliver, args=("second",), name="second")
    first.start()
    assert first_read.wait(timeout=60)
    second.start()
    for t in (first, second):
        t.join(timeout=120)
    assert sorted(o.action for o in outcomes.values()) == ["duplicate", "succeeded"]

    [message] = recovery.account.inbox.messages()
    assert message["MessageAttributes"]["status"]["Value"] == "SUCCEEDED"
    assert len(recovery.spotline_events()) == 1
    emf = recovery.metrics.serialize_metric_set()
    assert emf["RunsSucceeded"] == [1.0]
    assert len(_as_list(emf["EstimatedCostUSD"])) == 1
    assert len(_as_list(emf["SpotSavingsUSD"])) == 1


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
