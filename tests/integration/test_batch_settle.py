"""A batch settles whatever its parts do: unusable output fails its run, a failed part leaves the
others' results published once with its images named, and the preview search reads a bounded
number of images. Through the job-state function, on moto."""

from __future__ import annotations

import io
import itertools
import json
import tarfile
from collections import Counter
from typing import Any

import pytest

from spotline.domain.states import RunStatus
from spotline.inference import job_output
from spotline.inference.previews import MAX_SOURCE_READS
from spotline.ledger.records import Run
from tests.support.aws_account import BUCKET, Account
from tests.support.batches import feed, image_event, pipeline, promote, settings_for
from tests.support.recovery import Recovery, build_recovery
from tests.support.results import complete_job, job_output_archive

USER_ERROR = "AlgorithmError: UserError: cannot load model.pt: size mismatch"


def _close(account: Account, recovery: Recovery, folder: str, n: int, max_images: int) -> list[Run]:
    """``n`` images dropped under ``inference/<folder>/`` and closed into parts of ``max_images``."""
    p = pipeline(
        account, settings_for(account, SPOTLINE_BATCH_MAX_IMAGES=str(max_images)), clock=recovery.clock
    )
    promote(p.table)
    feed(p, [image_event(f"inference/{folder}/cam/IMG {i:03d}.jpg") for i in range(n)])
    p.clock.now += 121
    [outcome] = p.closer.close_due_batches()
    runs = [p.ledger.get_run(part.run_id) for part in outcome.runs]
    assert all(r is not None for r in runs)
    return [r for r in runs if r is not None]


def _keys(account: Account, run: Run) -> list[str]:
    assert run.inference is not None
    body = account.s3.get_object(Bucket=BUCKET, Key=run.inference.manifest_key)["Body"].read()
    return [str(k) for k in json.loads(body)[1:]]


def _lines(keys: list[str], defects: set[str]) -> list[dict[str, Any]]:
    return [
        {
            "image": k,
            "width": 64,
            "height": 64,
            "detections": [{"class": "rail_crack", "score": 0.9, "box": [1, 2, 30, 40]}]
            if k in defects
            else [],
        }
        for k in keys
    ]


def _job(run: Run) -> str:
    assert run.first_request is not None
    return str(run.first_request["TrainingJobName"])


def _read(account: Account, key: str) -> bytes:
    return bytes(account.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def _tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def recovery(account: Account, monkeypatch: pytest.MonkeyPatch) -> Recovery:
    return build_recovery(account, monkeypatch)


@pytest.mark.parametrize(
    ("archive", "why"),
    [
        (None, "is missing"),
        (b"this is not a tar archive", "not a readable tar archive"),
        (_tar({"summary.json": b"{}"}), "holds no predictions.jsonl"),
        (_tar({"predictions.jsonl": b'{"image": "a.jpg"}\n{"image": "b.jpg", "detections"\n'}), "not JSON"),
        ("oversized", "larger than 64 bytes"),
    ],
    ids=["missing", "corrupt", "no-predictions", "truncated-line", "oversized"],
)
def test_unusable_output_fails_its_run_with_one_alert(
    account: Account,
    recovery: Recovery,
    monkeypatch: pytest.MonkeyPatch,
    archive: bytes | str | None,
    why: str,
) -> None:
    [run] = _close(account, recovery, "rail-broken", 3, max_images=5000)
    if archive == "oversized":
        monkeypatch.setattr(job_output, "MAX_PREDICTIONS_BYTES", 64)
        lines = _lines(_keys(account, run), set())
        complete_job(account, run, job_output_archive(lines, {}))
    elif isinstance(archive, bytes):
        complete_job(account, run, archive)

    outcomes = recovery.end(_job(run), "Completed", training_s=300, billable_s=90, times=3)

    assert [o.action for o in outcomes] == ["failed", "duplicate", "duplicate"]
    settled = recovery.ledger.get_run(run.run_id)
    assert settled is not None and settled.status == RunStatus.FAILED
    assert settled.reason.startswith("unusable output: ") and why in settled.reason
    report = recovery.report(run.run_id)
    assert report["status"] == "FAILED" and why in report["reason"]
    [alert] = account.inbox.messages()  # one alert: the run's; the batch has no result to announce
    assert alert["MessageAttributes"]["status"]["Value"] == "FAILED"
    assert alert["Subject"] == "spotline: rail-broken failed (unusable output)"
    assert why in json.loads(alert["Message"])["reason"]
    summary = json.loads(_read(account, "results/rail-broken/summary.json"))
    assert (summary["status"], summary["images"], summary["missing_images"]) == ("FAILED", 0, 3)
    assert summary["missing"] == _keys(account, run)


ENDINGS = ["done-1", "done-2", "failed-3"]


@pytest.mark.parametrize("order", list(itertools.permutations(ENDINGS)), ids="-then-".join)
@pytest.mark.parametrize("how", ["user-error", "cancelled"])
def test_a_part_that_fails_for_good_settles_the_batch_once_naming_its_images(
    account: Account, recovery: Recovery, order: tuple[str, ...], how: str
) -> None:
    runs = _close(account, recovery, "rail-split", 20, max_images=7)
    assert [r.inference.part if r.inference else 0 for r in runs] == [1, 2, 3]
    keys = {r.inference.part: _keys(account, r) for r in runs if r.inference}
    defects = {keys[1][0], keys[2][3], keys[3][1]}
    for ending in order:
        run = runs[int(ending[-1]) - 1]
        if ending.startswith("done"):
            number = int(ending[-1])
            complete_job(
                account, run, job_output_archive(_lines(keys[number], defects), {"classes": ["rail_crack"]})
            )
            outcomes = recovery.end(_job(run), "Completed", training_s=300, billable_s=90, times=2)
            assert [o.action for o in outcomes] == ["succeeded", "duplicate"]
        elif how == "user-error":
            outcomes = recovery.end(_job(run), "Failed", "Failed", USER_ERROR, training_s=40, times=2)
            assert [o.action for o in outcomes] == ["failed", "duplicate"]
        else:
            outcomes = recovery.end(_job(run), "Stopped", "Stopped", training_s=40, times=2)
            assert [o.action for o in outcomes] == ["cancelled", "duplicate"]

    messages = account.inbox.messages()
    kinds = Counter(m["MessageAttributes"]["kind"]["Value"] for m in messages)
    assert kinds == {"run": 1, "inference": 1}  # the failed part's alert, then the batch's results once
    [batch_message] = [m for m in messages if m["MessageAttributes"]["kind"]["Value"] == "inference"]
    assert [len(keys[n]) for n in (1, 2, 3)] == [7, 7, 6]  # split evenly, as the closer splits
    assert batch_message["Subject"] == "rail-split: 2 of 14 images show defects, 6 missing"
    assert batch_message["MessageAttributes"]["status"]["Value"] == "PARTIAL"

    done = keys[1] + keys[2]
    predictions = [
        json.loads(x)["image"] for x in _read(account, "results/rail-split/predictions.jsonl").splitlines()
    ]
    assert predictions == sorted(done)
    summary = json.loads(_read(account, "results/rail-split/summary.json"))
    assert (summary["status"], summary["images"], summary["images_in_batch"]) == ("PARTIAL", 14, 20)
    assert summary["images_with_defects"] == 2 and summary["defect_images"] == sorted(
        [keys[1][0], keys[2][3]]
    )
    assert summary["missing_images"] == 6 and summary["missing"] == keys[3]
    [missing_part] = summary["missing_parts"]
    expected_status = "FAILED" if how == "user-error" else "CANCELLED"
    assert (missing_part["part"], missing_part["status"], missing_part["images"]) == (3, expected_status, 6)
    missing = [json.loads(x) for x in _read(account, "results/rail-split/missing.jsonl").splitlines()]
    assert [m["image"] for m in missing] == keys[3]
    assert {m["part"] for m in missing} == {3}
    if how == "user-error":
        assert missing_part["reason"] == USER_ERROR and missing[0]["reason"] == USER_ERROR


def test_two_thousand_findings_whose_images_are_gone_cost_a_bounded_number_of_reads(
    account: Account, recovery: Recovery
) -> None:
    [run] = _close(account, recovery, "rail-gone", 2000, max_images=5000)
    keys = _keys(account, run)  # the images themselves were never uploaded: every preview read misses
    complete_job(account, run, job_output_archive(_lines(keys, set(keys)), {"classes": ["rail_crack"]}))
    calls: Counter[str] = Counter()
    account.s3.meta.events.register("before-call.s3", lambda model, **_: calls.update([model.name]))

    [outcome] = recovery.end(_job(run), "Completed", training_s=300, billable_s=90)

    assert outcome.action == "succeeded"
    # The checkpoint pointer (none: inference writes shards), the job's output, the run's metrics
    # file for its report page, the preview search giving up at its cap: 2,000 images with findings,
    # none of them still there.
    assert calls["GetObject"] == 3 + MAX_SOURCE_READS
    summary = json.loads(_read(account, "results/rail-gone/summary.json"))
    assert summary["images_with_defects"] == 2000 and summary["previews"] == []
    assert len(summary["defect_images"]) == 1000 and summary["defect_images_not_listed"] == 1000
    [message] = account.inbox.messages()
    assert message["Subject"] == "rail-gone: 2,000 of 2,000 images show defects"
    assert len(json.loads(message["Message"])["defect_images"]) == 100
