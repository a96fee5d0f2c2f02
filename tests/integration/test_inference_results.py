"""A completed inference run's output becomes results/<batch>/..., one message and one event."""

from __future__ import annotations

import json

from tests.support.aws_account import BUCKET, Account
from tests.support.batches import feed, image_event, pipeline, promote, settings_for
from tests.support.results import (
    complete_job,
    inference_messages,
    job_output_archive,
    settle_completed,
)

CLASSES = ["missing_fastener", "rail_crack", "surface_squat"]


def _predictions(keys: list[str], defects: set[str]) -> list[dict]:
    lines: list[dict] = []
    for i, key in enumerate(keys):
        dets = (
            [{"class": CLASSES[i % 3], "score": 0.5 + (i % 5) / 10, "box": [1.0, 2.0, 30.0, 40.0]}]
            if key in defects
            else []
        )
        lines.append({"image": key, "width": 64, "height": 64, "detections": dets})
    return lines


def _summary(lines: list[dict]) -> dict:
    return {"images": len(lines), "classes": CLASSES, "score_threshold": 0.3, "shards": 1}


def _close(account: Account, folder: str, n: int, max_images: int = 5000):
    p = pipeline(account, settings_for(account, SPOTLINE_BATCH_MAX_IMAGES=str(max_images)))
    promote(p.table)
    keys = [f"cam/IMG {i:03d}.jpg" for i in range(n)]
    for k in keys[:3]:
        account.s3.put_object(
            Bucket=BUCKET, Key=f"inference/{folder}/{k}", Body=b"\xff\xd8\xff\xe0 fake jpeg"
        )
    feed(p, [image_event(f"inference/{folder}/{k}") for k in keys])
    p.clock.advance(121)
    [outcome] = p.closer.close_due_batches()
    return p, keys, outcome


def test_completed_inference_publishes_results_and_one_message(account: Account) -> None:
    p, keys, outcome = _close(account, "rail-2026-11-27", 40)
    [part] = outcome.runs
    run = p.ledger.get_run(part.run_id)
    assert run is not None
    lines = _predictions(keys, set(keys[:3]) | {keys[10]})
    describe = complete_job(account, run, job_output_archive(lines, _summary(lines)))

    settle_completed(account, p.settings, part.run_id, describe)
    settle_completed(account, p.settings, part.run_id, describe)  # redelivered event: nothing more

    body = account.s3.get_object(Bucket=BUCKET, Key="results/rail-2026-11-27/predictions.jsonl")[
        "Body"
    ].read()
    assert [json.loads(x)["image"] for x in body.decode().splitlines()] == sorted(keys)
    summary = json.loads(
        account.s3.get_object(Bucket=BUCKET, Key="results/rail-2026-11-27/summary.json")["Body"].read()
    )
    assert summary["images"] == 40
    assert summary["images_with_defects"] == 4
    assert summary["defect_images"] == sorted([*keys[:3], keys[10]])
    assert sum(summary["detections_per_class"].values()) == summary["detections"] == 4
    assert summary["model"]["lineage"]["run_id"] == "rail-detector-0123456789ab"
    assert summary["previews"], "previews of the worst findings"
    svg = account.s3.get_object(Bucket=BUCKET, Key="results/rail-2026-11-27/previews/01.svg")["Body"].read()
    assert svg.startswith(b"<svg") and b"<rect" in svg

    [message] = inference_messages(account)
    assert message["Subject"] == "rail-2026-11-27: 4 of 40 images show defects"
    assert message["MessageAttributes"]["batch"]["Value"] == "rail-2026-11-27"
    assert message["MessageAttributes"]["defects"]["Value"] == "yes"
    assert json.loads(message["Message"])["images_with_defects"] == 4


def test_a_split_batch_publishes_once_when_its_last_part_completes(account: Account) -> None:
    p, keys, outcome = _close(account, "rail-big", 25, max_images=10)
    assert len(outcome.runs) == 3
    defects = {keys[0], keys[24]}
    for i, part in enumerate(outcome.runs):
        run = p.ledger.get_run(part.run_id)
        assert run is not None and run.inference is not None
        manifest = account.s3.get_object(Bucket=BUCKET, Key=run.inference.manifest_key)["Body"].read()
        mine = json.loads(manifest)[1:]
        lines = _predictions(mine, defects)
        settle_completed(
            account,
            p.settings,
            part.run_id,
            complete_job(account, run, job_output_archive(lines, _summary(lines))),
        )
        if i < 2:
            assert inference_messages(account) == []

    [message] = inference_messages(account)
    assert message["Subject"] == "rail-big: 2 of 25 images show defects"
    body = account.s3.get_object(Bucket=BUCKET, Key="results/rail-big/predictions.jsonl")["Body"].read()
    assert len(body.decode().splitlines()) == 25


def test_the_batch_page_shows_counts_findings_unreadable_images_and_the_model(account: Account) -> None:
    p, keys, outcome = _close(account, "rail-2026-11-28", 12)
    [part] = outcome.runs
    run = p.ledger.get_run(part.run_id)
    assert run is not None
    lines = _predictions(keys, set(keys[:3]))
    lines[5] = {"image": keys[5], "error": "cannot identify image file"}
    settle_completed(
        account,
        p.settings,
        part.run_id,
        complete_job(account, run, job_output_archive(lines, _summary(lines))),
    )

    page = account.s3.get_object(Bucket=BUCKET, Key="results/rail-2026-11-28/report.html")
    html = page["Body"].read().decode()
    assert page["ContentType"].startswith("text/html")
    assert '<span data-field="images">12</span>' in html
    assert '<span data-field="images_with_defects">3</span>' in html
    assert html.count('src="data:image/svg+xml;base64,') == 3  # the previews, boxes drawn, embedded
    assert "cam/IMG 005.jpg" in html and "could not be read" in html
    assert 'href="../../runs/rail-detector-0123456789ab/report.html"' in html
    assert "<script" not in html

    [message] = inference_messages(account)
    body = json.loads(message["Message"])
    assert body["report_page"] == f"s3://{BUCKET}/results/rail-2026-11-28/report.html"
    assert body["report_console"].startswith("https://s3.console.aws.amazon.com/s3/object/")
