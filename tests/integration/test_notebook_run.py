"""spotline.notebook without the SDK, on moto: the run a config becomes, and wait() following it.

The job is created with the very request the notebook's ModelTrainer sends (tests/notebook checks
the SDK sends exactly it); its state-change events reach the job-state flow as SageMaker's would.
"""

from __future__ import annotations

import io
import json

import pytest

from spotline.config import ConfigError
from spotline.notebook import NotebookError, NotebookRun, Stack
from tests.support.recovery import INTERRUPTED, Recovery, job, rail_config


def _run(recovery: Recovery, text: str | None = None) -> NotebookRun:
    return NotebookRun.from_text(
        text or rail_config(backoff="1s"), Stack(recovery.settings), name="rail.yaml"
    )


class _Ticks:
    """A clock that moves one second per look."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_the_same_text_is_the_same_run_and_a_bad_config_is_refused_as_the_launch_function_refuses_it(
    recovery: Recovery,
) -> None:
    first, again = _run(recovery), _run(recovery)
    assert (first.run_id, first.job_name) == (again.run_id, again.job_name)
    assert first.job_name == job(first.run_id, 1)
    assert _run(recovery, rail_config(backoff="2s")).run_id != first.run_id
    tags = {t["Key"]: t["Value"] for t in first.request["Tags"]}
    assert (tags["spotline:run-id"], tags["spotline:attempt"]) == (first.run_id, "1")
    with pytest.raises(ConfigError) as caught:
        _run(recovery, "job:\n  max_wiat: 5h\n  channels: {train: datasets/rail/train/}\n")
    assert "job.max_wiat" in str(caught.value)


def test_wait_follows_the_run_across_a_relaunch_to_its_report(recovery: Recovery) -> None:
    run = _run(recovery)
    recovery.account.s3.put_object(  # what launch() writes before the SDK creates the job
        Bucket=recovery.settings.bucket, Key=f"runs/{run.run_id}/config.yaml", Body=run.config_bytes
    )
    recovery.account.sagemaker.create_training_job(**run.request)
    steps = [
        lambda: recovery.end(job(run.run_id, 1), *INTERRUPTED, training_s=600, billable_s=180),
        recovery.run_relaunches,
        lambda: recovery.end(
            job(run.run_id, 2), "Completed", training_s=300, billable_s=90, metrics={"val/mAP50": 0.7}
        ),
    ]

    def sleep(_: float) -> None:
        if steps:
            steps.pop(0)()

    out = io.StringIO()
    result = run.wait(poll_s=0, out=out, clock=_Ticks(), sleep=sleep)
    assert result.succeeded and [a["attempt"] for a in result.attempts] == [1, 2]
    assert result.report["savings"]["billable_s"] == 270
    states = [line.split(": ", 1)[1] for line in out.getvalue().splitlines()]
    # before its first job ends the ledger has no run: the job's own status (moto's, here)
    assert states[0].startswith("attempt 1 ") and "/" in states[0]
    assert states[1:] == ["attempt 1 RETRYING", "attempt 2 RUNNING", "attempt 2 SUCCEEDED"]
    assert json.loads(json.dumps(result.report))["run_id"] == run.run_id


def test_wait_gives_up_when_nothing_moves(recovery: Recovery) -> None:
    run = _run(recovery)
    with pytest.raises(NotebookError, match=rf"{run.run_id}: nothing moved for 5 s \(last: not launched\)"):
        run.wait(poll_s=0, stall_s=5, out=None, clock=_Ticks(), sleep=lambda _: None)
