"""Completed inference jobs, as the job-state function sees them: a model.tar.gz and a describe."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from typing import Any

from spotline.domain.settings import Settings
from spotline.domain.states import RunStatus
from spotline.ledger.records import Run
from spotline.wiring import Wiring
from tests.support.aws_account import BUCKET, Account


def job_output_archive(lines: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]) -> bytes:
    """The job's model.tar.gz as the container leaves it (predictions.jsonl, summary.json)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (
            ("predictions.jsonl", "".join(json.dumps(line) + "\n" for line in lines).encode()),
            ("summary.json", json.dumps(summary).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def complete_job(account: Account, run: Run, archive: bytes) -> dict[str, Any]:
    """Upload the job's output where SageMaker puts it; return the DescribeTrainingJob job-state reads."""
    assert run.first_request is not None
    name = run.first_request["TrainingJobName"]
    key = f"runs/{run.run_id}/output/{name}/output/model.tar.gz"
    account.s3.put_object(Bucket=BUCKET, Key=key, Body=archive)
    return {
        "TrainingJobName": name,
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://{BUCKET}/{key}"},
        "TrainingTimeInSeconds": 300,
        "BillableTimeInSeconds": 100,
    }


def settle_completed(account: Account, settings: Settings, run_id: str, describe: Mapping[str, Any]) -> Any:
    """What the job-state function does with a Completed event: settle the run and publish it."""
    w = Wiring(settings, clients=account.client)
    run = w.ledger.get_run(run_id)
    assert run is not None
    return w.publisher.finish(run, RunStatus.SUCCEEDED, attempt=1, outcome="COMPLETED", describe=describe)


def inference_messages(account: Account) -> list[dict[str, Any]]:
    """The SNS messages delivered so far, all of them batch results (kind ``inference``)."""
    messages = account.inbox.messages()
    kinds = [m.get("MessageAttributes", {}).get("kind", {}).get("Value") for m in messages]
    assert kinds == ["inference"] * len(messages), f"a completed inference job sent other messages: {kinds}"
    return messages
