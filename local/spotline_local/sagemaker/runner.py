"""Runs one local training job: the container's own ``train`` entry point on the /opt/ml contract.

The job's base directory stands in for ``/opt/ml`` (``SAGEMAKER_BASE_DIR``): channels are downloaded
from the local S3 (S3Prefix and ManifestFile), hyperparameters and resource config written, checkpoints
restored from and mirrored to ``CheckpointConfig.S3Uri`` while the container runs, the model
uploaded as ``<S3OutputPath>/<job>/output/model.tar.gz``. stdout goes to the local CloudWatch Logs
(``/aws/sagemaker/TrainingJobs``) and is read with the job's MetricDefinitions.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from spotline_local import die_with_parent
from spotline_local.faults import Fault
from spotline_local.images import IMAGES_ENV, ImageCommand, LocalImages
from spotline_local.sagemaker.jobs import TrainingJob

log = logging.getLogger(__name__)

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
SIGTERM_GRACE_S = 120
DOWNLOAD_THREADS = 8  # SageMaker downloads channels in parallel too
CAPACITY_ERROR = (
    "CapacityError: Unable to provision requested ML compute capacity. Please retry using a different ML "
    "instance type."
)
STATUS_RESTART = "Restarting the training job from its checkpoints on new Spot capacity"
INTERNAL_ERROR = "InternalServerError: We encountered an internal error. Please try again."
NO_IMAGE = (
    "ClientError: the local SageMaker has no command for image {image} and no container engine: "
    f"map it to one in the local images file (${IMAGES_ENV})"
)
# Faults that end a job before it trains (nothing billed), with SageMaker's failure reason.
FAILS_BEFORE_TRAINING = {"capacity_error": CAPACITY_ERROR, "internal_error": INTERNAL_ERROR}
_STEP = re.compile(r"\bstep=(\d+)")
_PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "SYSTEMROOT")


@dataclass(frozen=True)
class RunnerSettings:
    workdir: Path
    spot_discount: float = 0.7
    phase_delay_s: float = 0.3
    checkpoint_sync_s: float = 1.0
    # Threads per job: a number, or None for the cores free when the job starts, shared out among the
    # jobs that may run at once (see spotline_container.threads: on a shared machine spinning OpenMP
    # threads and more threads than free cores make a job tens of times slower, not two or three).
    torch_threads: int | None = None
    max_concurrent_jobs: int = 1
    keep_workdirs: bool = True
    own_image: str = ""  # the stack's ImageUri: spotline's container
    images: LocalImages = field(default_factory=LocalImages)

    def threads_for_job(self) -> int:
        """The thread count of a job starting now."""
        from spotline_container.threads import cores_available, free_cores, resolve_threads

        share = max(1, cores_available() // max(1, self.max_concurrent_jobs))
        if self.torch_threads is not None:
            return max(1, self.torch_threads)
        threads = resolve_threads("auto", share, free_cores)
        assert threads is not None
        return threads


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


class JobRunner:
    """Drives ``job`` from Starting to a terminal status; one thread per job."""

    def __init__(
        self,
        job: TrainingJob,
        *,
        clients: Any,
        settings: RunnerSettings,
        fault: Fault | None,
        slots: threading.Semaphore,
    ) -> None:
        self.job = job
        self.s3 = clients("s3")
        self.logs = clients("logs")
        self.settings = settings
        self.fault = fault
        self.slots = slots
        self.base = settings.workdir / job.name
        self.checkpoint_dir = self.base / "checkpoints"
        self._log_buffer: list[dict[str, Any]] = []
        self._log_lock = threading.Lock()
        self._log_stream = f"{job.name}/algo-1-{int(time.time())}"
        self._synced: dict[str, tuple[int, int]] = {}
        self._interrupt_at: int | None = None
        self._interrupt_line: re.Pattern[str] | None = None
        self._interrupt_after: float | None = None
        self.image = str(job.get("AlgorithmSpecification", {}).get("TrainingImage") or "")
        self.command: ImageCommand | None = settings.images.command_for(self.image, settings.own_image)
        self._interrupt = threading.Event()
        self.process: subprocess.Popen[str] | None = None
        self._metric_regexes = [
            (d["Name"], re.compile(d["Regex"]))
            for d in job.get("AlgorithmSpecification", {}).get("MetricDefinitions", [])
        ]

    def kill(self) -> None:
        """End the container now (the stack is stopping and the job did not stop in time)."""
        if self.process is not None:
            _kill_group(self.process)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name=f"job-{self.job.name}", daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        try:
            with self.slots:
                self._run()
        except Exception as e:
            log.exception("local job %s broke", self.job.name)
            self.job.move("Failed", "Failed", FailureReason=f"InternalServerError: local runner: {e}")
        finally:
            self._flush_logs()
            if not self.settings.keep_workdirs:
                shutil.rmtree(self.base, ignore_errors=True)

    # -- the job's life ----------------------------------------------------------------------------

    def _run(self) -> None:
        job, fault = self.job, self.fault
        if self._wait(self.settings.phase_delay_s):
            job.move("Stopped", "Stopped")
            return
        if fault is not None and fault.kind in FAILS_BEFORE_TRAINING:
            job.move(
                "Failed",
                "Failed",
                FailureReason=FAILS_BEFORE_TRAINING[fault.kind],
                TrainingTimeInSeconds=0,
                BillableTimeInSeconds=0,
            )
            return
        if self.command is None:
            job.move(
                "Failed",
                "Failed",
                FailureReason=NO_IMAGE.format(image=self.image),
                TrainingTimeInSeconds=0,
                BillableTimeInSeconds=0,
            )
            return
        if fault is not None and fault.kind == "spot_interruption":
            self._arm(fault)
        started = time.time()
        job.set_fields(TrainingStartTime=started)
        self._open_log_stream()
        while True:
            job.move("Downloading")
            self._prepare()
            job.move("Training")
            outcome, code = self._train_once(started)
            self._sync_checkpoints(final=True)
            if outcome == "interrupted" and fault is not None and fault.then == "restart":
                job.move("Interrupted")
                self._disarm()
                if self._wait(self.settings.phase_delay_s):
                    outcome = "stopped"
                else:
                    job.move("Starting", message=STATUS_RESTART)
                    shutil.rmtree(self.base, ignore_errors=True)
                    self._synced.clear()
                    continue
            break
        billing = self._billing(started)
        metrics = self._final_metrics()
        if outcome == "exited" and code == 0:
            job.move("Uploading")
            artifacts = self._upload_model()
            job.move(
                "Completed", "Completed", ModelArtifacts=artifacts, FinalMetricDataList=metrics, **billing
            )
        elif outcome == "interrupted":
            job.move("Interrupted")
            assert fault is not None
            job.move(fault.then, "Stopped", FinalMetricDataList=metrics, **billing)
        elif outcome == "stopped":
            job.move("Uploading")
            artifacts = self._upload_model()
            job.move("Stopped", "Stopped", ModelArtifacts=artifacts, FinalMetricDataList=metrics, **billing)
        elif outcome == "max_runtime":
            job.move("MaxRuntimeExceeded", "Stopped", FinalMetricDataList=metrics, **billing)
        else:
            job.move(
                "Failed",
                "Failed",
                FailureReason=self._failure_reason(code),
                FinalMetricDataList=metrics,
                **billing,
            )

    def _arm(self, fault: Fault) -> None:
        """Interrupt at the fault's step, line or time (whichever comes first)."""
        by_line_or_time = fault.at_line is not None or fault.after_seconds is not None
        self._interrupt_at = None if by_line_or_time and not fault.at_iteration else fault.at_iteration
        self._interrupt_line = re.compile(fault.at_line) if fault.at_line is not None else None
        self._interrupt_after = fault.after_seconds

    def _disarm(self) -> None:
        self._interrupt_at, self._interrupt_line, self._interrupt_after = None, None, None

    def _wait(self, seconds: float) -> bool:
        """Sleep, waking early (True) if someone stops the job."""
        return self.job.stop_requested.wait(seconds)

    def _billing(self, started: float) -> dict[str, Any]:
        training = max(1, math.ceil(time.time() - started))
        spot = bool(self.job.get("EnableManagedSpotTraining"))
        billable = max(1, round(training * (1.0 - self.settings.spot_discount))) if spot else training
        return {"TrainingTimeInSeconds": training, "BillableTimeInSeconds": billable}

    def _final_metrics(self) -> list[dict[str, Any]]:
        last: dict[str, dict[str, Any]] = {}
        for point in self.job.metrics:
            last[point["MetricName"]] = {k: point[k] for k in ("MetricName", "Value", "Timestamp")}
        return list(last.values())

    def _failure_reason(self, code: int) -> str:
        failure = self.base / "output" / "failure"
        text = failure.read_text(errors="replace").strip() if failure.is_file() else ""
        reason = (
            f"AlgorithmError: {text}" if text else f"AlgorithmError: the container exited with code {code}"
        )
        return reason[:1024]

    # -- the /opt/ml tree --------------------------------------------------------------------------

    def _prepare(self) -> None:
        config = self.base / "input" / "config"
        for folder in (
            config,
            self.base / "input" / "data",
            self.base / "model",
            self.base / "output" / "data",
            self.checkpoint_dir,
        ):
            folder.mkdir(parents=True, exist_ok=True)
        job = self.job
        channels = job.get("InputDataConfig", [])
        for channel in channels:
            self._download_channel(channel)
        resource = job.get("ResourceConfig", {})
        (config / "hyperparameters.json").write_text(json.dumps(job.get("HyperParameters", {})))
        (config / "resourceconfig.json").write_text(
            json.dumps(
                {
                    "current_host": "algo-1",
                    "hosts": ["algo-1"],
                    "current_instance_type": resource.get("InstanceType", ""),
                    "current_group_name": "homogeneousCluster",
                    "network_interface_name": "eth0",
                }
            )
        )
        (config / "inputdataconfig.json").write_text(
            json.dumps(
                {
                    c["ChannelName"]: {
                        "TrainingInputMode": c.get("InputMode")
                        or job.get("AlgorithmSpecification", {}).get("TrainingInputMode"),
                        "S3DistributionType": c["DataSource"]["S3DataSource"].get(
                            "S3DataDistributionType", "FullyReplicated"
                        ),
                        "RecordWrapperType": c.get("RecordWrapperType", "None"),
                    }
                    for c in channels
                }
            )
        )
        checkpoint = job.get("CheckpointConfig")
        if checkpoint:
            (config / "checkpointconfig.json").write_text(json.dumps(checkpoint))
            self._restore_checkpoints(checkpoint["S3Uri"])

    def _keys(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(o["Key"] for o in page.get("Contents", []))
        return keys

    def _download_channel(self, channel: dict[str, Any]) -> None:
        source = channel["DataSource"]["S3DataSource"]
        target = self.base / "input" / "data" / channel["ChannelName"]
        target.mkdir(parents=True, exist_ok=True)
        bucket, prefix = split_s3_uri(source["S3Uri"])
        copies: list[tuple[str, str, Path]] = []
        if source.get("S3DataType", "S3Prefix") == "ManifestFile":
            base_uri, relatives = self._read_manifest(bucket, prefix)
            base_bucket, base_prefix = split_s3_uri(base_uri)
            copies = [(base_bucket, base_prefix + r, target / r) for r in relatives]
        else:
            for key in self._keys(bucket, prefix):
                if not key.endswith("/"):
                    relative = key[len(prefix) :].lstrip("/") or key.rsplit("/", 1)[-1]
                    copies.append((bucket, key, target / relative))
        with ThreadPoolExecutor(DOWNLOAD_THREADS) as pool:
            list(pool.map(lambda c: self._download(*c), copies))

    def _read_manifest(self, bucket: str, key: str) -> tuple[str, list[str]]:
        """A manifest: ``[{"prefix": "s3://b/p/"}, "rel/a.jpg", ...]`` (JSON array or one entry a line)."""
        text = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        stripped = text.strip()
        entries = (
            json.loads(stripped)
            if stripped.startswith("[")
            else [json.loads(x) for x in stripped.splitlines() if x]
        )
        if not entries or not isinstance(entries[0], dict) or "prefix" not in entries[0]:
            raise ValueError(f"manifest s3://{bucket}/{key} must start with a {{'prefix': ...}} entry")
        return str(entries[0]["prefix"]), [str(e) for e in entries[1:]]

    def _download(self, bucket: str, key: str, path: Path) -> None:
        if ".." in Path(path).relative_to(self.base).parts:
            raise ValueError(f"object {key} would land outside the job's tree")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.s3.download_file(bucket, key, str(path))

    # -- checkpoints -------------------------------------------------------------------------------

    def _checkpoint_target(self) -> tuple[str, str] | None:
        checkpoint = self.job.get("CheckpointConfig")
        if not checkpoint:
            return None
        bucket, prefix = split_s3_uri(checkpoint["S3Uri"])
        return bucket, prefix if not prefix or prefix.endswith("/") else prefix + "/"

    def _restore_checkpoints(self, uri: str) -> None:
        target = self._checkpoint_target()
        if target is None:
            return
        bucket, prefix = target
        for key in self._keys(bucket, prefix):
            relative = key[len(prefix) :]
            if relative and not relative.endswith("/"):
                path = self.checkpoint_dir / relative
                try:
                    self._download(bucket, key, path)
                except ClientError as e:
                    # Listed, then gone: another job syncing the same location (the trials of a
                    # tuning job share one) removed a checkpoint it rotated out. Nothing to restore.
                    if e.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
                        raise
                    path.unlink(missing_ok=True)
                    continue
                stat = path.stat()
                self._synced[relative] = (stat.st_size, stat.st_mtime_ns)

    def _sync_checkpoints(self, *, final: bool = False) -> None:
        """Mirror the checkpoint folder to S3: new and changed files up, deleted files removed."""
        target = self._checkpoint_target()
        if target is None or not self.checkpoint_dir.is_dir():
            return
        bucket, prefix = target
        seen = set()
        for path in sorted(self.checkpoint_dir.rglob("*")):
            if not path.is_file() or path.name.startswith(".") or path.suffix in (".tmp", ".partial"):
                continue
            relative = path.relative_to(self.checkpoint_dir).as_posix()
            seen.add(relative)
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            signature = (stat.st_size, stat.st_mtime_ns)
            if self._synced.get(relative) == signature:
                continue
            try:
                self.s3.upload_file(str(path), bucket, prefix + relative)
            except FileNotFoundError:
                continue  # replaced while we looked; the next pass uploads its successor
            self._synced[relative] = signature
        for relative in [r for r in self._synced if r not in seen]:
            self.s3.delete_object(Bucket=bucket, Key=prefix + relative)
            del self._synced[relative]
        if final:
            log.debug("checkpoints of %s synced: %d files", self.job.name, len(seen))

    # -- the container process ---------------------------------------------------------------------

    def _container_env(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
        threads = str(self.settings.threads_for_job())
        env.update(
            {
                "SAGEMAKER_BASE_DIR": str(self.base),
                "TRAINING_JOB_NAME": self.job.name,
                "TRAINING_JOB_ARN": self.job.arn,
                "SM_CURRENT_HOST": "algo-1",
                "PYTHONUNBUFFERED": "1",
                "OMP_NUM_THREADS": threads,
                "MKL_NUM_THREADS": threads,
                "SPOTLINE_TORCH_THREADS": threads,
                "OMP_WAIT_POLICY": "PASSIVE",  # idle threads sleep: other jobs share these cores
                "KMP_BLOCKTIME": "0",
            }
        )
        assert self.command is not None
        env.update(self.command.environment)
        env.update({k: str(v) for k, v in (self.job.get("Environment") or {}).items()})
        return env

    def _train_once(self, started: float) -> tuple[str, int]:
        """Run the container once: ("exited", code), ("interrupted"|"stopped"|"max_runtime", code)."""
        self._interrupt.clear()
        assert self.command is not None
        argv = [a.replace("{base}", str(self.base)) for a in self.command.argv]
        training_since = time.time()
        # The command is the image's stand-in: spotline's container, or the operator's own line of the
        # stack's images file (never a job request's text); it ends with this process.
        self.process = process = subprocess.Popen(  # noqa: S603
            die_with_parent.exec_command(argv),
            cwd=self.base,
            start_new_session=True,  # its own process group: what it starts (loader workers) ends with it
            env=self._container_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            errors="replace",
        )
        reader = threading.Thread(target=self._read_output, args=(process,), daemon=True)
        reader.start()
        max_runtime = float(self.job.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400))
        reason: str | None = None
        last_sync = time.time()
        while process.poll() is None:
            if reason is None:
                after = self._interrupt_after
                if (
                    after is not None
                    and time.time() - training_since >= after
                    and not self._interrupt.is_set()
                ):
                    self._disarm()
                    self._interrupt.set()
                    process.send_signal(signal.SIGTERM)  # the time the fault names has passed
                if self._interrupt.is_set():
                    reason = "interrupted"  # the reader already sent SIGTERM, on the very line
                    deadline = time.time() + SIGTERM_GRACE_S
                    continue
                if self.job.stop_requested.is_set():
                    reason = "stopped"
                    self.job.move("Stopping", "Stopping")
                elif time.time() - started > max_runtime:
                    reason = "max_runtime"
                if reason is not None:
                    process.send_signal(signal.SIGTERM)
                    deadline = time.time() + SIGTERM_GRACE_S
            elif time.time() > deadline:
                _kill_group(process)
            if time.time() - last_sync >= self.settings.checkpoint_sync_s:
                self._sync_checkpoints()
                self._flush_logs()
                last_sync = time.time()
            time.sleep(0.1)
        _kill_group(process)  # whatever it left behind (a worker that outlived it)
        reader.join(timeout=5)
        if reason is None and self._interrupt.is_set():
            reason = "interrupted"  # it exited on the reader's SIGTERM before the loop looked
        code = process.returncode
        return (reason or "exited", code)

    def _read_output(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        with (self.base / "container.log").open("a") as local_log:
            for raw in process.stdout:
                line = raw.rstrip("\n")
                now = time.time()
                local_log.write(line + "\n")
                local_log.flush()
                self.job.output_lines += 1
                with self._log_lock:
                    self._log_buffer.append({"timestamp": int(now * 1000), "message": line or " "})
                for name, regex in self._metric_regexes:
                    match = regex.search(line)
                    if match:
                        step = _STEP.search(line)
                        self.job.metrics.append(
                            {
                                "MetricName": name,
                                "Value": float(match.group(1)),
                                "Timestamp": now,
                                "Step": int(step.group(1)) if step else None,
                            }
                        )
                step = _STEP.search(line)
                if step:
                    self.job.last_step = int(step.group(1))
                at_step = self._interrupt_at is not None and step and int(step.group(1)) >= self._interrupt_at
                at_line = self._interrupt_line is not None and self._interrupt_line.search(line)
                if (at_step or at_line) and not self._interrupt.is_set():
                    self._disarm()
                    self._interrupt.set()
                    process.send_signal(signal.SIGTERM)  # capacity reclaimed: no waiting for the poll loop

    # -- logs and model ----------------------------------------------------------------------------

    def _open_log_stream(self) -> None:
        with contextlib.suppress(self.logs.exceptions.ResourceAlreadyExistsException):
            self.logs.create_log_group(logGroupName=LOG_GROUP)
        self.logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=self._log_stream)

    def _flush_logs(self) -> None:
        with self._log_lock:
            batch, self._log_buffer = self._log_buffer, []
        for start in range(0, len(batch), 1000):
            try:
                self.logs.put_log_events(
                    logGroupName=LOG_GROUP,
                    logStreamName=self._log_stream,
                    logEvents=batch[start : start + 1000],
                )
            except Exception:  # logs are a convenience; the job's outcome does not depend on them
                log.warning("could not ship logs of %s", self.job.name, exc_info=True)
                return

    def _upload_model(self) -> dict[str, str]:
        output = self.job.get("OutputDataConfig", {})
        bucket, prefix = split_s3_uri(output["S3OutputPath"])
        prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        key = f"{prefix}{self.job.name}/output/model.tar.gz"
        archive = self.base / "model.tar.gz"
        _tar(self.base / "model", archive)
        self.s3.upload_file(str(archive), bucket, key)
        data = self.base / "output" / "data"
        if data.is_dir() and any(data.iterdir()):
            _tar(data, self.base / "output.tar.gz")
            self.s3.upload_file(
                str(self.base / "output.tar.gz"), bucket, f"{prefix}{self.job.name}/output/output.tar.gz"
            )
        return {"S3ModelArtifacts": f"s3://{bucket}/{key}"}


def _kill_group(process: subprocess.Popen[str]) -> None:
    """SIGKILL the container's process group (it is the group's leader), if anything is left in it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _tar(folder: Path, archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
