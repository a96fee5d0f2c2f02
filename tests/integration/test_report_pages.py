"""A run's report.html on moto: written on retry and on settle, linked from every alert."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from spotline.metric_names import METRICS_FILE, TRAIN_LOSS, TRAIN_LR, VAL_MAP50
from spotline_container.metrics_file import MetricsFile
from tests.support.aws_account import BUCKET, REGION, Account
from tests.support.recovery import Recovery, build_recovery, inbox_by_status, rail_config

INTERRUPTED_AT = 150


@pytest.fixture
def recovery(account: Account, monkeypatch: pytest.MonkeyPatch) -> Recovery:
    return build_recovery(account, monkeypatch)


def job(run_id: str, attempt: int) -> str:
    return f"spotline-{run_id}-a{attempt:02d}"


def sync_metrics(
    account: Account, run_id: str, folder: Path, attempt: int, steps: range, *, stop: bool
) -> None:
    """What the container writes in its checkpoint folder and SageMaker syncs to the run's checkpoints."""
    file = MetricsFile(folder, attempt)
    file.started(steps.start, 300)
    for step in steps:
        file.add(TRAIN_LOSS, 3.0 / (1 + step / 50), step)
        file.add(TRAIN_LR, 0.01, step)
    if stop:
        file.interrupted(steps[-1])
    else:
        file.add(VAL_MAP50, 0.71, steps[-1])
    file.flush()
    account.s3.upload_file(str(folder / METRICS_FILE), BUCKET, f"runs/{run_id}/checkpoints/{METRICS_FILE}")


def page(account: Account, run_id: str) -> str:
    obj = account.s3.get_object(Bucket=BUCKET, Key=f"runs/{run_id}/report.html")
    assert obj["ContentType"].startswith("text/html")
    return str(obj["Body"].read().decode())


def test_the_page_follows_the_run_and_every_alert_links_to_it(
    recovery: Recovery, account: Account, tmp_path: Path
) -> None:
    config = rail_config() + "# owner: <script>alert('x')</script> & co\n"
    run_id = recovery.drop_config(config)
    folder = tmp_path / "checkpoints"
    sync_metrics(account, run_id, folder, 1, range(0, INTERRUPTED_AT + 1, 10), stop=True)
    recovery.checkpoint(run_id, INTERRUPTED_AT)  # and the checkpoint written on SIGTERM

    recovery.end(job(run_id, 1), "Stopped", "MaxWaitTimeExceeded", training_s=1800, billable_s=540)
    retrying = page(account, run_id)
    assert 'data-field="status">RETRYING<' in retrying
    assert f'data-interrupted-at="{INTERRUPTED_AT}"' in retrying

    recovery.run_relaunches()
    sync_metrics(account, run_id, folder, 2, range(INTERRUPTED_AT, 301, 10), stop=False)
    recovery.end(job(run_id, 2), "Completed", training_s=2400, billable_s=720, metrics={"val/mAP50": 0.71})

    html = page(account, run_id)
    report = recovery.report(run_id)
    assert 'data-field="status">SUCCEEDED<' in html
    assert set(re.findall(r'<polyline data-attempt="(\d+)" data-metric="train/loss"', html)) == {"1", "2"}
    assert f'data-interrupted-at="{INTERRUPTED_AT}" data-attempt="1"' in html
    assert f'data-resumed-at="{INTERRUPTED_AT}" data-attempt="2"' in html
    saved = re.search(r'data-field="savings_usd" data-value="([^"]+)"', html)
    assert saved is not None and float(saved.group(1)) == report["savings"]["savings_usd"]
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in html  # the config as run
    assert "<script" not in html
    assert "emulated" not in html  # a deployed stack's Spot market is AWS's

    page_uri = f"s3://{BUCKET}/runs/{run_id}/report.html"
    console = f"https://s3.console.aws.amazon.com/s3/object/{BUCKET}?region={REGION}&prefix=runs/{run_id}/report.html"
    inbox = inbox_by_status(account.inbox.messages())
    bodies = [json.loads(m["Message"]) for m in inbox["RETRYING"] + inbox["SUCCEEDED"]]
    assert [(b["report_page"], b["report_console"]) for b in bodies] == [(page_uri, console)] * 2
    details = [e["detail"] for e in recovery.spotline_events()]
    assert [(d["report_page"], d["report_console"]) for d in details] == [(page_uri, console)] * 2
    assert "X-Amz-Signature" not in json.dumps(bodies + details)  # never a presigned link


def test_the_local_stack_says_its_spot_market_is_emulated(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPOTLINE_SPOT_MARKET", "emulated")
    recovery = build_recovery(account, monkeypatch)
    run_id = recovery.drop_config(rail_config())
    recovery.end(job(run_id, 1), "Completed", training_s=60, billable_s=18, metrics={"val/mAP50": 0.7})
    assert 'data-field="emulated"' in page(account, run_id)


def test_a_page_that_cannot_be_drawn_never_stops_the_settlement(recovery: Recovery, account: Account) -> None:
    run_id = recovery.drop_config(rail_config())
    hostile = b'{"name": "train/loss", "step": 1e308, "value": "x"}\n' + b"\xff\xfe not json\n" * 1000
    account.s3.put_object(Bucket=BUCKET, Key=f"runs/{run_id}/checkpoints/{METRICS_FILE}", Body=hostile)
    account.s3.delete_object(Bucket=BUCKET, Key=f"runs/{run_id}/config.yaml")
    [outcome] = recovery.end(job(run_id, 1), "Completed", training_s=60, billable_s=18)
    assert outcome.action == "succeeded"
    html = page(account, run_id)
    assert "No metrics recorded yet" in html and "is gone" in html
    assert recovery.report(run_id)["status"] == "SUCCEEDED"
