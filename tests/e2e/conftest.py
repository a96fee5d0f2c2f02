"""One local stack for the end-to-end tests: moto + the local SageMaker + the functions, from template.yaml.

The stack's functions read their environment at cold start, as in Lambda; the package's fixture sets it
with a MonkeyPatch context before the first invocation and restores it (and stops the stack) after the
last end-to-end test, so nothing of it reaches the other test folders. Tiny configs and a tiny
synthetic dataset keep every job to a few seconds of CPU.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from spotline.domain.states import RunKind
from spotline.ledger.records import Run
from spotline.ledger.runs import RunLedger
from spotline.ledger.table import LedgerTable
from spotline.metric_names import METRICS_FILE
from spotline.reports.metrics import RunCurves, parse_metrics
from spotline_local.faults import Fault
from spotline_local.images import load_images
from spotline_local.progress import Stalled, wait_for_progress
from spotline_local.stack import LocalStack, StackOptions
from tests.support.local_stack import running_stack

T = TypeVar("T")
STALL_S = 120.0  # a wait fails when nothing in the stack moved this long
DATASET_PREFIX = "datasets/e2e"
INTERRUPT_AT = 10
# The NumPy example image (examples/numpy_trainer), run by the command its images file names.
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "numpy_trainer"
GEOMETRY_INTERRUPT_LINE = r"^#metric train/loss=\S+ step=12$"  # interrupted by one of its metric lines
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED", "REJECTED")

TRAIN_CONFIG = """
job:
  instance_type: ml.g4dn.xlarge
  fallback_instance_types: [ml.g5.xlarge]
  max_runtime: 10m
  max_attempts: 3
  retry_backoff: 1s
  channels: {train: datasets/e2e/train/, val: datasets/e2e/val/}
promote: {metric: val/mAP50, min: 0.0}
model: {depth: 1, width: 8, head_width: 16}
input: {size: 64}
dataloader: {num_workers: 0}
solver: {batch_size: 4, max_iter: 60, warmup_iters: 2, log_period: 2}
checkpoint: {period_iters: 4, keep: 2}
inference: {batch_size: 4, score_threshold: 0.0, num_workers: 0, amp: none}
"""

FAULTS = [
    Fault(job="spotline-e2e-train-*-a01", kind="spot_interruption", at_iteration=INTERRUPT_AT),
    Fault(
        job="spotline-e2e-restart-*-a01", kind="spot_interruption", at_iteration=INTERRUPT_AT, then="restart"
    ),
    # configs/e2e-tune.yaml: the tuner's second trial, restarted by Managed Spot.
    Fault(
        job="spotline-e2e-tune-*-002-*", kind="spot_interruption", at_iteration=INTERRUPT_AT, then="restart"
    ),
    # configs/e2e-lost.yaml: the second trial of its first tuning job finds no Spot capacity.
    Fault(job="spotline-e2e-lost-*-002-*", kind="capacity_error"),
    Fault(job="spotline-e2e-cli-*", kind="capacity_error"),  # e2e-cli.yaml, e2e-cli-submit.yaml
    Fault(job="validation-*", kind="capacity_error"),
    Fault(job="probe-internal", kind="internal_error"),
    Fault(job="spotline-e2e-geometry-*-a01", kind="spot_interruption", at_line=GEOMETRY_INTERRUPT_LINE),
]


def wait_for(what: str, check: Callable[[], T | None], stall_s: float = STALL_S) -> T:
    """Poll ``check`` until it returns something; fail naming ``what`` once the local stack has not
    moved (no job output, no status change, no function invoked) for ``stall_s`` seconds — never at a
    fixed deadline, so a busy machine makes the tests slower, not red."""
    stack = RUNNING[0] if RUNNING else None
    try:
        return wait_for_progress(
            what, check, stack.activity if stack else (lambda: None), stall_s=stall_s, period_s=0.5
        )
    except Stalled as e:
        pytest.fail(str(e))


@dataclass
class E2E:
    stack: LocalStack
    ledger: RunLedger
    table: LedgerTable

    def client(self, service: str) -> Any:
        return self.stack.clients(service)

    @property
    def bucket(self) -> str:
        return self.stack.bucket

    def put(self, key: str, body: bytes | str) -> dict[str, Any]:
        data = body.encode() if isinstance(body, str) else body
        response: dict[str, Any] = self.client("s3").put_object(Bucket=self.bucket, Key=key, Body=data)
        return response

    def keys(self, prefix: str) -> list[str]:
        pages = self.client("s3").get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def read(self, key: str) -> bytes:
        body: bytes = self.client("s3").get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body

    def report(self, run_id: str) -> dict[str, Any]:
        """The run's ``report.json`` once its settle has written it (the ledger says SUCCEEDED a
        moment before the report lands)."""

        def written() -> dict[str, Any] | None:
            try:
                found: dict[str, Any] = json.loads(self.read(f"runs/{run_id}/report.json"))
            except self.client("s3").exceptions.NoSuchKey:
                return None
            return found if found.get("status") in TERMINAL else None

        return wait_for(f"the report of run {run_id}", written)

    def curves(self, run_id: str) -> RunCurves:
        """The run's metrics file (synced from its checkpoints), read back as the report reads it."""
        return parse_metrics(self.read(f"runs/{run_id}/checkpoints/{METRICS_FILE}"))

    def run_for(self, key: str) -> Run | None:
        return next((r for r in self.ledger.recent_runs(100) if r.source.key == key), None)

    def inference_run_for(self, batch: str) -> Run | None:
        """The inference run of ``batch``, once its batch closed and launched one."""
        runs = self.ledger.recent_runs(100)
        return next((r for r in runs if r.kind == RunKind.INFERENCE and batch in r.source.key), None)

    def finished(self, run_id: str) -> Run:
        def done() -> Run | None:
            run = self.ledger.get_run(run_id)
            return run if run and run.status in TERMINAL else None

        return wait_for(f"run {run_id} to finish", done)

    def alerts(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        assert self.stack.alerts is not None
        return [m for m in self.stack.alerts.poll() if predicate(m)]


RUNNING: list[LocalStack] = []


@pytest.fixture(autouse=True)
def hold_the_stack_for_other_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests of this folder that bring their own (moto-mocked) account run with the stack's functions held,
    and its functions rebuild their clients afterwards, so the two never talk to each other's AWS."""
    if "e2e" in request.fixturenames or not RUNNING or RUNNING[0].dispatcher is None:
        yield
        return
    from spotline.adapters import aws

    dispatcher = RUNNING[0].dispatcher
    dispatcher.pause()
    try:
        yield
    finally:
        aws.reset_clients()
        dispatcher.resume()


@pytest.fixture(scope="package")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    options = StackOptions(
        workdir=tmp_path_factory.mktemp("local-stack"),
        faults=FAULTS,
        images=load_images(EXAMPLE / "local-images.yaml"),
        schedule_period_s=1.0,
        retry_delay_s=0.2,
        phase_delay_s=0.1,
        max_concurrent_jobs=2,  # each job gets its share of the cores free when it starts
    )
    with running_stack(options) as stack:
        RUNNING.append(stack)
        table = LedgerTable(stack.table, stack.clients("dynamodb"))
        try:
            yield E2E(stack, RunLedger(table), table)
        finally:
            RUNNING.remove(stack)


@pytest.fixture(scope="package")
def dataset(e2e: E2E, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny synthetic rail dataset, uploaded under datasets/e2e/ (train, val) of the drop bucket."""
    from spotline_container.synthetic import generate_dataset

    paths = generate_dataset(
        tmp_path_factory.mktemp("rail"), n_train=16, n_val=8, n_unlabelled=5, image_size=64
    )
    s3 = e2e.client("s3")
    for split in ("train", "val"):
        root = paths[split]
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            s3.upload_file(
                str(path), e2e.bucket, f"{DATASET_PREFIX}/{split}/{path.relative_to(root).as_posix()}"
            )
    return paths


@dataclass(frozen=True)
class TrainedRun:
    run_id: str
    key: str
    run: Run


@pytest.fixture(scope="package")
def trained_run(e2e: E2E, dataset: dict[str, Path]) -> TrainedRun:
    """configs/e2e-train.yaml dropped once: interrupted at iteration 10 of attempt 1, resumed, promoted."""
    key = "configs/e2e-train.yaml"
    e2e.put(key, TRAIN_CONFIG)
    started = wait_for("the launch function to record the run", lambda: e2e.run_for(key))
    run = e2e.finished(started.run_id)
    return TrainedRun(run.run_id, key, run)
