"""A large split inference batch at the moment its last part completes, on a moto server.

What the earlier parts' invocations left is set up directly (their manifests, their part files
under ``results/<batch>/parts/``, their runs marked done in the close); the last part's job output
is uploaded where SageMaker puts it. :func:`publish_last_part` is then exactly what the job-state
function does with that part's Completed event after DescribeTrainingJob: settle the run and
publish the batch. Shared by ``tests/integration/test_publish_bounds.py`` and
``benchmarks/bench_inference_publish.py``.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from spotline.domain.model_choice import ModelChoice, ModelSource
from spotline.domain.settings import Settings
from spotline.domain.states import RunKind, RunStatus
from spotline.inference.launch import inference_run_id, manifest_body, manifest_key, split_evenly
from spotline.inference.results import part_prefix, results_prefix
from spotline.ledger.records import BatchClose, ClosePart, InferencePart, Run, RunSource
from spotline.runs.publish import Settlement
from spotline.wiring import Wiring
from tests.support.aws_account import create_ledger_table

Clients = Callable[[str], Any]
CLASSES = ["missing_fastener", "rail_crack", "surface_squat"]
MODEL = ModelChoice(
    uri="s3://models/runs/rail-detector-0123456789ab/output/model.tar.gz",
    source=ModelSource.PROMOTED,
    run_id="rail-detector-0123456789ab",
    lineage={"run_id": "rail-detector-0123456789ab"},
)
NOW = 1_795_770_000.0


def provision(clients: Clients, name: str) -> Settings:
    """A bucket, a ledger table and a topic named ``name``; the functions' settings for them."""
    region = clients("s3").meta.region_name
    where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    clients("s3").create_bucket(Bucket=name, **where)
    create_ledger_table(clients("dynamodb"), name)
    return settings_for(name, clients("sns").create_topic(Name=name)["TopicArn"])


def settings_for(name: str, topic_arn: str) -> Settings:
    """The functions' settings for the resources :func:`provision` made."""
    return Settings(
        bucket=name,
        table=name,
        topic_arn=topic_arn,
        image_uri="123456789012.dkr.ecr.eu-west-3.amazonaws.com/spotline:1",
        execution_role_arn="arn:aws:iam::123456789012:role/spotline",
        job_prefix="spotline",
    )


def image_keys(count: int) -> list[str]:
    """Field photos as a line inspection names them, in key order."""
    return sorted(f"line-{i // 50_000:02d}/km-{i // 500:04d}/IMG_{i:07d}.jpg" for i in range(count))


def prediction(key: str, index: int, dense: int = 0) -> dict[str, Any]:
    """The container's line for one image: about one image in eight shows one to three defects
    (every image ``dense`` of them, when given: a worst case of long lines)."""
    count = dense or (1 + index % 3 if index % 8 == 0 else 0)
    detections = [
        {
            "class": CLASSES[(index + d) % 3],
            "score": round(0.31 + ((index * 7 + d * 13) % 69) / 100, 4),
            "box": [12.5 + d, 40.0, 96.5 + d, 88.0],
        }
        for d in range(count)
    ]
    return {"image": key, "width": 1920, "height": 1080, "detections": detections}


def _lines_bytes(keys: list[str], start: int, dense: int) -> Iterator[bytes]:
    for offset, key in enumerate(keys):
        yield json.dumps(prediction(key, start + offset, dense)).encode() + b"\n"


def job_archive(keys: list[str], start: int, dense: int = 0) -> bytes:
    """The part's model.tar.gz: predictions.jsonl and the container's summary.json."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        for name, data in (
            ("predictions.jsonl", b"".join(_lines_bytes(keys, start, dense))),
            ("summary.json", json.dumps({"classes": CLASSES, "score_threshold": 0.3}).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class LoadedBatch:
    wiring: Wiring
    batch: str
    run: Run
    describe: dict[str, Any]
    parts: int
    images: int

    @property
    def prefix(self) -> str:
        return results_prefix(self.batch, 1)


def load_batch(
    clients: Clients, settings: Settings, *, images: int, per_part: int, batch: str, dense: int = 0
) -> LoadedBatch:
    """``images`` images split as the closer splits them (parts of at most ``per_part``), all parts
    but the last completed; the last one's output uploaded and its run RUNNING."""
    w = Wiring(settings, clients=clients, clock=lambda: NOW)
    keys = image_keys(images)
    chunks = split_evenly(keys, per_part)
    parts = []
    for number, chunk in enumerate(chunks, start=1):
        run_id = inference_run_id(settings.bucket, batch, 1, number)
        w.bucket.put(manifest_key(run_id), manifest_body(settings.bucket, batch, chunk), "application/json")
        parts.append(ClosePart(run_id, number, len(chunks), len(chunk), manifest_key(run_id)))
    w.batches.put_close(
        BatchClose(
            batch=batch,
            generation=1,
            parts=tuple(parts),
            image_count=images,
            model=MODEL,
            reason="ready",
            status="LAUNCHED",
            closed_at="2026-11-27T08:00:00.000Z",
        )
    )
    prefix = results_prefix(batch, 1)
    start = 0
    for part, chunk in zip(parts, chunks, strict=True):
        if part.part < len(parts):
            where = part_prefix(prefix, part.part)
            with w.bucket.writer(where + "predictions.jsonl", "application/x-ndjson") as out:
                for raw in _lines_bytes(chunk, start, dense):
                    out.write(raw)
            w.bucket.put_json(where + "summary.json", {"classes": CLASSES, "score_threshold": 0.3})
            w.batches.mark_part_done(batch, 1, part.run_id)
        start += len(chunk)
    last, chunk = parts[-1], chunks[-1]
    inference = InferencePart(batch, 1, last.part, last.parts, last.images, last.manifest_key, MODEL)
    source = RunSource(settings.bucket, f"inference/{batch}", f"g1-p{last.part}")
    w.ledger.create_run(
        last.run_id, kind=RunKind.INFERENCE, source=source, now=NOW, lease_seconds=300, inference=inference
    )
    run = w.ledger.mark_running(last.run_id, attempt=1, now=NOW, expected=RunStatus.PENDING)
    artifact = f"runs/{last.run_id}/output/spotline-{last.run_id}-a01/output/model.tar.gz"
    w.bucket.put(artifact, job_archive(chunk, images - len(chunk), dense), "application/gzip")
    describe = {
        "TrainingJobName": f"spotline-{last.run_id}-a01",
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": w.bucket.uri(artifact)},
        "TrainingTimeInSeconds": 600,
        "BillableTimeInSeconds": 180,
    }
    return LoadedBatch(w, batch, run, describe, len(parts), images)


def publish_last_part(loaded: LoadedBatch) -> Settlement:
    """What the job-state function does with the last part's Completed event."""
    return loaded.wiring.publisher.finish(
        loaded.run, RunStatus.SUCCEEDED, attempt=1, outcome="COMPLETED", describe=loaded.describe
    )


@contextmanager
def counted_calls(client: Any) -> Iterator[dict[str, int]]:
    """Every API call ``client`` makes inside the block, by operation name."""
    calls: dict[str, int] = {}

    def count(model: Any, **_: Any) -> None:
        calls[model.name] = calls.get(model.name, 0) + 1

    client.meta.events.register("before-call", count)
    try:
        yield calls
    finally:
        client.meta.events.unregister("before-call", count)
