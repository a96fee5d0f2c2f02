"""Publishing a split batch is bounded: memory does not grow with the parts, S3 calls grow with the
parts only. The job-state function's own work on the last part's Completed event, measured in this
process while S3, DynamoDB and SNS answer from a moto server in another (so moto's storage is not
counted). The figures side by side with the former in-memory approach: benchmarks/README.md."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from spotline.adapters.drop_bucket import WRITE_PART_BYTES
from spotline.domain.states import RunStatus
from spotline.inference.previews import MAX_SOURCE_READS
from spotline_local.moto_stack import Clients, MotoServer
from tests.support.publish_load import counted_calls, load_batch, provision, publish_last_part

pytestmark = pytest.mark.slow
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def clients() -> Iterator[Clients]:
    server = MotoServer()
    server.start()
    try:
        yield Clients(server.endpoint)
    finally:
        server.stop()


def _publish(clients: Clients, name: str, *, parts: int, per_part: int, dense: int) -> dict[str, Any]:
    """Peak traced memory and S3 calls of the last part's publish; the batch's summary."""
    settings = provision(clients, name)
    loaded = load_batch(
        clients, settings, images=parts * per_part, per_part=per_part, batch=name, dense=dense
    )
    loaded.wiring.ledger.get_run(loaded.run.run_id)  # clients and connections warm before measuring
    tracemalloc.start()
    try:
        with counted_calls(clients("s3")) as calls:
            settled = publish_last_part(loaded)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert settled.action == "settled" and settled.status == RunStatus.SUCCEEDED
    body = clients("s3").get_object(Bucket=name, Key=loaded.prefix + "summary.json")["Body"].read()
    predictions = clients("s3").head_object(Bucket=name, Key=loaded.prefix + "predictions.jsonl")
    return {"peak": peak, "calls": calls, "summary": json.loads(body), "bytes": predictions["ContentLength"]}


def test_memory_does_not_grow_with_the_number_of_parts(clients: Clients) -> None:
    # Long lines (30 detections each: ~2.6 KB) so that 8 parts already outgrow one upload part.
    few = _publish(clients, "bounds-8", parts=8, per_part=600, dense=30)
    many = _publish(clients, "bounds-24", parts=24, per_part=600, dense=30)

    assert few["bytes"] > 1.2 * WRITE_PART_BYTES and many["bytes"] > 3 * few["bytes"] * 0.95
    assert many["summary"]["images"] == 24 * 600 and many["summary"]["detections"] == 24 * 600 * 30
    # Three times the parts and the bytes, the same peak: one part and the upload buffer.
    assert many["peak"] <= 1.15 * few["peak"], (few["peak"] / MIB, many["peak"] / MIB)
    part_bytes = many["bytes"] / 24
    assert many["peak"] <= 2 * WRITE_PART_BYTES + 8 * part_bytes + 4 * MIB, many["peak"] / MIB


def test_s3_calls_grow_with_the_parts_not_the_images(clients: Clients) -> None:
    small = _publish(clients, "calls-4x100", parts=4, per_part=100, dense=0)
    larger = _publish(clients, "calls-4x1000", parts=4, per_part=1000, dense=0)
    more = _publish(clients, "calls-16x100", parts=16, per_part=100, dense=0)

    assert larger["calls"] == small["calls"]  # ten times the images, the same parts: the same calls
    # One GetObject per part file and per part's summary beyond the first, the job's output, the
    # run's metrics file (for its report page), previews.
    assert small["calls"]["GetObject"] == 1 + (4 - 1) + 1 + 1 + MAX_SOURCE_READS
    assert more["calls"]["GetObject"] - small["calls"]["GetObject"] == 16 - 4
    assert {k: v for k, v in more["calls"].items() if k != "GetObject"} == {
        k: v for k, v in small["calls"].items() if k != "GetObject"
    }
    # The last part's file and summary, results, the batch's summary and page, the run's report and page.
    assert small["calls"]["PutObject"] == 7
