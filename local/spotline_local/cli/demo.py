"""``spotline demo``: the whole story on synthetic rail images, on this machine, in a few minutes.

Stages: generate a dataset -> start the local stack -> upload it -> drop a config whose first attempt
is interrupted mid-training -> watch the relaunch resume from its checkpoint and finish -> check the
promotion -> drop a folder of images -> wait for the inference results and the alert -> write
pictures and a summary. Any stage that fails ends the demo with a non-zero exit.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from spotline.domain.states import TERMINAL_RUN_STATES, RunKind, RunStatus
from spotline.ledger.records import Attempt, Run
from spotline.ledger.runs import RunLedger
from spotline.metric_names import TRAIN_THROUGHPUT
from spotline.runs.report_page import RunPages
from spotline_local.faults import Fault
from spotline_local.owned_folder import ForeignFolder, OwnedFolder, claim
from spotline_local.progress import DEFAULT_STALL_S, Stalled, wait_for_progress
from spotline_local.provision import QueueTrigger
from spotline_local.stack import LocalStack, StackOptions
from spotline_local.stack_lock import StackRunning

CONFIG_FILE = Path(__file__).with_name("rail-demo.yaml")
CONFIG_KEY = "configs/rail-demo.yaml"
BATCH = "line-42-km-118"
INTERRUPT_AT = 150
TRAIN_IMAGES, VAL_IMAGES, FIELD_IMAGES, IMAGE_SIZE = 400, 80, 12, 128
DATASET_DIR = "dataset"  # in the workdir
T = TypeVar("T")


class DemoFailed(Exception):
    """A stage did not reach its goal; the message says which and why."""


class DemoRefused(Exception):
    """The demo will not start: its folders are someone else's, or a stack already runs there."""


@dataclass
class Summary:
    run_id: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    resumed_at: int | None = None
    map50: float | None = None
    promoted: bool = False
    savings: str = ""
    money: dict[str, Any] = field(default_factory=dict)
    inference_run: str = ""
    images: int = 0
    images_with_defects: int = 0
    detections: dict[str, int] = field(default_factory=dict)
    alerts: list[str] = field(default_factory=list)
    pictures: list[Path] = field(default_factory=list)
    pages: list[Path] = field(default_factory=list)


class Progress:
    def __init__(self) -> None:
        self.t0 = time.time()

    def say(self, text: str) -> None:
        elapsed = int(time.time() - self.t0)
        sys.stdout.write(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {text}\n")
        sys.stdout.flush()


class Waits:
    """The demo's waits: each fails once nothing in the stack has moved for ``stall_s`` seconds (a
    slow machine only makes the demo slower), and shows each training log window as it arrives."""

    def __init__(self, stack: LocalStack, progress: Progress, stall_s: float, max_iter: int) -> None:
        self.stack, self.progress, self.stall_s, self.max_iter = stack, progress, stall_s, max_iter
        self._shown: dict[str, int] = {}

    def until(self, what: str, check: Callable[[], T | None]) -> T:
        try:
            return wait_for_progress(
                what, check, self.stack.activity, stall_s=self.stall_s, on_change=self._show_training
            )
        except Stalled as e:
            raise DemoFailed(str(e)) from e

    def _show_training(self, _: Hashable) -> None:
        """One line per new log window of a training job: its iteration and speed."""
        assert self.stack.sagemaker is not None
        for job in list(self.stack.sagemaker.jobs.values()):
            speeds = [m for m in list(job.metrics) if m["MetricName"] == TRAIN_THROUGHPUT and m.get("Step")]
            if not speeds or speeds[-1]["Step"] <= self._shown.get(job.name, 0):
                continue
            latest = speeds[-1]
            self._shown[job.name] = int(latest["Step"])
            self.progress.say(
                f"  job {job.name}: iteration {latest['Step']}/{self.max_iter}, "
                f"{latest['Value']:.0f} images/s"
            )


def run_demo(out_dir: Path, workdir: Path, stall_s: float = DEFAULT_STALL_S) -> int:
    """The demo, end to end; 0 when every stage reached its goal. Only ever replaces what it wrote."""
    progress = Progress()
    try:
        output = claim(out_dir, "demo output")
    except ForeignFolder as e:
        raise DemoRefused(f"{e}: choose another --out") from e
    faults = [Fault(job="spotline-rail-demo-*-a01", kind="spot_interruption", at_iteration=INTERRUPT_AT)]
    options = StackOptions(
        workdir=workdir, faults=faults, schedule_period_s=2.0, retry_delay_s=0.5, fresh_workdir=True
    )
    stack = LocalStack(options)
    try:
        summary = _story(stack, progress, output, stall_s)
    except DemoFailed as e:
        progress.say(f"FAILED: {e}")
        sys.stdout.write(f"  the functions' log: {stack.workdir / 'logs' / 'functions.log'}\n")
        sys.stdout.write(f"  the jobs' folders: {stack.workdir / 'jobs'}\n")
        if output.entries():
            sys.stdout.write(f"  {output.path} still holds the previous run's results\n")
        return 1
    except ForeignFolder as e:
        raise DemoRefused(f"{e}: choose another --workdir") from e
    except StackRunning as e:
        hint = f"wait for it, or stop it with `spotline local down --workdir {workdir}`"
        raise DemoRefused(f"{e}; {hint}") from e
    except KeyboardInterrupt:
        progress.say("interrupted: stopping the local stack and its jobs")
        raise
    finally:
        stack.stop()
    _print_summary(summary, progress)
    return 0


def _story(stack: LocalStack, progress: Progress, output: OwnedFolder, stall_s: float) -> Summary:
    from spotline.config import parse_run_config
    from spotline_container.synthetic import generate_dataset

    summary = Summary()
    stack.prepare_workdir(DATASET_DIR)  # claimed and locked before anything is written there
    max_iter = parse_run_config(CONFIG_FILE.read_bytes()).solver.max_iter
    waits = Waits(stack, progress, stall_s, max_iter)
    progress.say(
        f"generating a synthetic rail dataset ({TRAIN_IMAGES} train, {VAL_IMAGES} val, "
        f"{FIELD_IMAGES} field images, {IMAGE_SIZE} px) while the local stack starts"
    )
    with ThreadPoolExecutor(1) as pool:
        generating = pool.submit(
            generate_dataset,
            stack.workdir / DATASET_DIR,
            TRAIN_IMAGES,
            VAL_IMAGES,
            FIELD_IMAGES,
            7,
            IMAGE_SIZE,
        )
        stack.start()
        progress.say(
            "local stack up: moto (S3, SQS, SNS, DynamoDB, EventBridge) wired from template.yaml, "
            f"the local SageMaker, the {len(stack.provisioned.functions)} functions"
        )
        data = generating.result()
    assert stack.sagemaker is not None
    stack.sagemaker.listeners.append(_job_printer(progress))
    s3 = stack.clients("s3")
    bucket = stack.bucket

    progress.say(f"uploading the dataset to s3://{bucket}/datasets/rail/")
    uploads = [
        (str(path), f"datasets/rail/{split}/{path.relative_to(data[split]).as_posix()}")
        for split in ("train", "val")
        for path in sorted(p for p in Path(data[split]).rglob("*") if p.is_file())
    ]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda u: s3.upload_file(u[0], bucket, u[1]), uploads))

    progress.say(
        f"dropping {CONFIG_KEY} (its first attempt will lose its Spot capacity at iteration {INTERRUPT_AT})"
    )
    s3.put_object(Bucket=bucket, Key=CONFIG_KEY, Body=CONFIG_FILE.read_bytes())
    runs = _ledger(stack)
    run = waits.until("the launch function to start the run", lambda: _run_with(runs, RunKind.TRAINING))
    summary.run_id = run.run_id
    final = waits.until("the training run to finish", lambda: _terminal(runs, summary.run_id))
    if final.status != RunStatus.SUCCEEDED:
        raise DemoFailed(f"training run ended {final.status}: {final.reason}")
    summary.attempts = runs.attempts(summary.run_id)
    if len(summary.attempts) < 2:
        raise DemoFailed("the run finished without the relaunch the demo is about")
    summary.resumed_at = _resumed_at(stack, final, summary.attempts[-1].attempt)
    if not summary.resumed_at:
        raise DemoFailed("the relaunched attempt started from iteration 0, not from the checkpoint")
    progress.say(
        f"run {summary.run_id} SUCCEEDED after {len(summary.attempts)} attempts; "
        f"attempt 2 resumed at iteration {summary.resumed_at}"
    )
    summary.map50, summary.promoted = _promotion(stack, summary)
    progress.say(
        f"validation mAP@0.5 = {summary.map50:.3f} -> "
        + ("promoted: the default model for inference" if summary.promoted else "not promoted")
    )
    if not summary.promoted:
        raise DemoFailed("the model did not pass its promotion gate, so inference has no model")

    field_images = sorted(Path(data["unlabelled"]).glob("*.jpg"))
    progress.say(f"dropping {len(field_images)} field images under inference/{BATCH}/ and its _READY marker")
    for path in field_images:
        s3.upload_file(str(path), bucket, f"inference/{BATCH}/{path.name}")
    s3.put_object(Bucket=bucket, Key=f"inference/{BATCH}/_READY", Body=b"")
    window = max((t.window_s for t in stack.provisioned.triggers if isinstance(t, QueueTrigger)), default=0)
    progress.say(
        f"the image queue gathers events for up to {window:.0f} s (template.yaml), then the batch closes"
    )
    infer = waits.until("the inference run to start", lambda: _run_with(runs, RunKind.INFERENCE))
    summary.inference_run = infer.run_id
    final = waits.until("the inference results", lambda: _terminal(runs, summary.inference_run))
    if final.status != RunStatus.SUCCEEDED:
        raise DemoFailed(f"inference run ended {final.status}: {final.reason}")
    alerts = waits.until("the inference alert", lambda: _alert_for(stack, summary.inference_run))
    summary.alerts = [m["subject"] for m in alerts]
    predictions = _predictions(stack, summary.inference_run)
    summary.images = len(predictions)
    summary.images_with_defects = sum(1 for p in predictions if p.get("detections"))
    for p in predictions:
        for d in p.get("detections", []):
            summary.detections[d["class"]] = summary.detections.get(d["class"], 0) + 1
    progress.say(f"inference: {summary.images} images, {summary.images_with_defects} with defects")

    with output.publish() as staging:  # the previous results stay until these are complete
        pictures = _pictures(predictions, Path(data["unlabelled"]), staging)
        summary.savings, pages, summary.money = _pages(stack, runs, summary, staging, waits)
        summary.pictures = [output.path / p.name for p in pictures]
        # Each page keeps its bucket key (runs/<id>/report.html, results/<batch>/report.html).
        summary.pages = [output.path / p.relative_to(staging) for p in pages]
        (staging / "summary.json").write_text(json.dumps(_summary_json(summary, output.path), indent=2))
    missing = [p for p in summary.pages if not p.is_file()]
    if missing or len(set(summary.pages)) != len(summary.pages):
        raise DemoFailed(f"the report pages did not land apart in {output.path}: {summary.pages}")
    return summary


def _ledger(stack: LocalStack) -> RunLedger:
    from spotline_local.cli.ledger_view import ledger

    return ledger(stack.table, stack.clients("dynamodb"))


def _run_with(runs: RunLedger, kind: RunKind) -> Run | None:
    return next((r for r in runs.recent_runs(50) if r.kind == kind), None)


def _terminal(runs: RunLedger, run_id: str) -> Run | None:
    run = runs.get_run(run_id)
    return run if run and run.status in TERMINAL_RUN_STATES else None


def _job_printer(progress: Progress) -> Callable[[dict[str, Any]], None]:
    shown = {"Starting", "Training", "Interrupted", "Completed", "Failed", "Stopped", "MaxWaitTimeExceeded"}

    def show(event: dict[str, Any]) -> None:
        detail = event["Detail"]
        secondary = detail.get("SecondaryStatus")
        if secondary not in shown:
            return
        status = detail["TrainingJobStatus"]
        extra = ""
        if status in ("Completed", "Stopped", "Failed"):
            training, billable = detail.get("TrainingTimeInSeconds"), detail.get("BillableTimeInSeconds")
            extra = f" - {training} s, billable {billable} s"
        if detail.get("FailureReason"):
            extra += f" - {detail['FailureReason']}"
        rung = detail.get("ResourceConfig", {}).get("InstanceType", "")
        spot = "Spot" if detail.get("EnableManagedSpotTraining") else "on-demand"
        progress.say(f"  job {detail['TrainingJobName']} ({rung}, {spot}): {status}/{secondary}{extra}")

    return show


def _run_pages(stack: LocalStack) -> RunPages:
    from spotline.adapters.drop_bucket import DropBucket
    from spotline.domain.settings import Settings

    settings = Settings.from_env(stack.environment())
    return RunPages(settings, DropBucket(settings, stack.clients("s3")))


def _resumed_at(stack: LocalStack, run: Run, attempt: int) -> int | None:
    """The iteration ``attempt`` started from, as its start mark in the run's metrics file says."""
    return _run_pages(stack).curves(run).resumed_at(attempt)


def _promotion(stack: LocalStack, summary: Summary) -> tuple[float, bool]:
    from spotline.ledger.models import Models
    from spotline.ledger.table import LedgerTable

    job = stack.clients("sagemaker").describe_training_job(TrainingJobName=summary.attempts[-1].job_name)
    metrics = {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}
    model = Models(LedgerTable(stack.table, stack.clients("dynamodb"))).promoted()
    return float(metrics.get("val/mAP50", 0.0)), bool(model and model.run_id == summary.run_id)


def _alert_for(stack: LocalStack, run_id: str) -> list[dict[str, Any]] | None:
    assert stack.alerts is not None
    messages = stack.alerts.poll()
    about = [m for m in messages if run_id in m["message"] or m["subject"].startswith(BATCH)]
    return messages if about else None


def _predictions(stack: LocalStack, run_id: str) -> list[dict[str, Any]]:
    """predictions.jsonl of the inference run: from results/ if published there, else its model.tar.gz."""
    s3 = stack.clients("s3")
    listing = s3.list_objects_v2(Bucket=stack.bucket, Prefix=f"results/{BATCH}/").get("Contents", [])
    key = next((o["Key"] for o in listing if o["Key"].endswith("predictions.jsonl")), None)
    if key is not None:
        text = s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read().decode()
    else:
        attempts = _ledger(stack).attempts(run_id)
        job = stack.clients("sagemaker").describe_training_job(TrainingJobName=attempts[-1].job_name)
        uri = job["ModelArtifacts"]["S3ModelArtifacts"]
        bucket, _, archive_key = uri[5:].partition("/")
        archive = s3.get_object(Bucket=bucket, Key=archive_key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            member = tar.extractfile("predictions.jsonl")
            if member is None:
                raise DemoFailed("the inference model.tar.gz has no predictions.jsonl")
            text = member.read().decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _pages(
    stack: LocalStack, runs: RunLedger, summary: Summary, out_dir: Path, waits: Waits
) -> tuple[str, list[Path], dict[str, Any]]:
    """The two pages (the run's, the batch's) copied into ``out_dir``, the run's savings sentence and
    its money as numbers.

    The sentence is worded from the run's report.json by the pages' own code: the summary and the
    page cannot disagree.
    """
    from spotline.domain import layout
    from spotline.reports.page import savings_sentence
    from spotline_local.cli.pages import fetch_page, page_key
    from spotline_local.cli.targets import local_target

    s3, bucket = stack.clients("s3"), stack.bucket

    def written(key: str) -> Callable[[], bool | None]:
        return lambda: True if s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount") else None

    target = local_target(stack.workdir)
    pages = []
    for run_id in (summary.run_id, summary.inference_run):
        run = runs.get_run(run_id)
        if run is None:
            raise DemoFailed(f"run {run_id} vanished from the ledger")
        waits.until(f"the page of {run_id}", written(page_key(run)))
        pages.append(fetch_page(target, runs, run, out_dir).path)
    report = json.loads(
        s3.get_object(Bucket=bucket, Key=layout.run_report_key(summary.run_id))["Body"].read()
    )
    savings = report["savings"]
    money = {
        "cost_usd": savings.get("estimated_cost_usd"),
        "on_demand_usd": savings.get("on_demand_usd"),
        "saved_usd": savings.get("savings_usd"),
        "saved_percent": savings.get("savings_pct"),
        "estimate": True,
    }
    return savings_sentence(savings), pages, money


def _pictures(predictions: list[dict[str, Any]], images: Path, out_dir: Path) -> list[Path]:
    from PIL import Image, ImageDraw, ImageFont

    colors = {"missing_fastener": (255, 200, 0), "rail_crack": (255, 60, 60), "surface_squat": (60, 160, 255)}
    pictures = []
    chosen = sorted(predictions, key=lambda p: -len(p.get("detections", [])))[:4]
    for prediction in chosen:
        name = Path(prediction["image"]).name
        image = Image.open(images / name).convert("RGB")
        scale = 3
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
        draw = ImageDraw.Draw(image)
        font = ImageFont.load_default(size=13)
        for d in prediction.get("detections", []):
            x0, y0, x1, y1 = (v * scale for v in d["box"])
            color = colors.get(d["class"], (255, 255, 255))
            draw.rectangle((x0, y0, x1, y1), outline=color, width=3)
            label = f"{d['class']} {d['score']:.2f}"
            anchor = (x0, max(0, y0 - 16))
            draw.rectangle(draw.textbbox(anchor, label, font=font), fill=(0, 0, 0))
            draw.text(anchor, label, fill=color, font=font)
        path = out_dir / f"detections-{Path(name).stem}.png"
        image.save(path)
        pictures.append(path)
    return pictures


def _summary_json(s: Summary, out: Path) -> dict[str, Any]:
    """summary.json: the numbers of the summary; files as paths relative to ``out``."""
    return {
        "training_run": s.run_id,
        "attempts": [
            {k: v for k, v in a.view().items() if k not in ("failure_reason", "launched_at", "ended_at")}
            for a in s.attempts
        ],
        "resumed_at_iteration": s.resumed_at,
        "val_map50": s.map50,
        "promoted": s.promoted,
        "money": s.money,  # USD, numbers: an estimate from list prices
        "inference_run": s.inference_run,
        "images": s.images,
        "images_with_defects": s.images_with_defects,
        "detections_per_class": s.detections,
        "alerts": s.alerts,
        "pictures": [p.name for p in s.pictures],
        "pages": [str(p.relative_to(out)) for p in s.pages],
    }


def _print_summary(s: Summary, progress: Progress) -> None:
    lines = [
        "",
        "spotline demo - summary",
        f"  training run       {s.run_id}",
    ]
    for a in s.attempts:
        lines.append(
            f"    attempt {a.attempt}: {a.job_name} on {a.instance_type} "
            f"({'Spot' if a.spot else 'on-demand'}) - {a.secondary_status or a.status.value}, "
            f"{a.training_s} s, billable {a.billable_s} s"
        )
    lines += [
        f"  resumed at         iteration {s.resumed_at} (from the interrupted attempt's checkpoint)",
        f"  validation mAP@0.5 {s.map50:.3f}" + (" - promoted" if s.promoted else ""),
        f"  money              {s.savings} (an estimate)",
        f"  inference run      {s.inference_run}: {s.images} images, {s.images_with_defects} with defects "
        f"({', '.join(f'{k} {v}' for k, v in sorted(s.detections.items())) or 'none'})",
        "  alerts             " + ("\n                     ".join(s.alerts) or "none"),
        f"  pictures           {', '.join(p.name for p in s.pictures)} in {s.pictures[0].parent}"
        if s.pictures
        else "  pictures           none",
        f"  total time         {time.time() - progress.t0:.0f} s",
        f"  batch report       {s.pages[1] if len(s.pages) > 1 else '-'}",
        f"  run report         {s.pages[0] if s.pages else '-'}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
