"""A spotline run launched from a notebook through the SageMaker SDK, and followed across relaunches.

The cells a researcher runs (``docs/notebook.md``)::

    from spotline.notebook import Stack, NotebookRun
    stack = Stack.local(".spotline/local")        # or Stack.from_environment(<the functions' env>)
    run = NotebookRun.from_file("rail.yaml", stack)  # validated as the launch function validates
    trainer = run.model_trainer()                  # a sagemaker.train.ModelTrainer: look, change, launch
    run.launch(trainer)                            # the config snapshot, then trainer.train(wait=False)
    result = run.wait()                            # follows the *run* to its end, relaunches included

The trainer sends the very CreateTrainingJob request the launch function would for this config
(:func:`spotline.domain.requests.training_request`): Managed Spot with MaxWait, the run's
checkpoints, metric definitions, retry strategy, KMS, network isolation, spotline's tags and
spotline's deterministic job name (the SDK would append a timestamp). The job carries
``spotline:run-id``, so its first state-change event makes it a run through the catch-up path
(:mod:`spotline.runs.catch_up`), with the policy of the snapshot ``runs/<run id>/config.yaml``;
from then on it is relaunched and settled like any run. The SDK's own ``wait()`` returns when a
Spot job stops; :meth:`NotebookRun.wait` follows the run in the ledger until it is settled.

The SDK (``pip install 'spotline[notebook]'``, about 1 GB) is imported only by
:meth:`NotebookRun.model_trainer`; nothing here is part of the Lambda functions. Its traps are
handled: the role check calls ``iam:SimulatePrincipalPolicy`` (turned off with
``SAGEMAKER_VALIDATE_ROLE=false``: the role is the stack's own, named by its full ARN), the
default-bucket lookup calls a hard-coded STS endpoint (every S3 path is given, so it is never
looked up), and ``_get_unique_name`` appends a timestamp (the trainer keeps spotline's name).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from spotline.adapters.drop_bucket import ObjectMissing
from spotline.adapters.training_jobs import JobNotFound
from spotline.config import RunConfig, parse_run_config
from spotline.domain import layout
from spotline.domain.naming import job_name, run_id_for_object
from spotline.domain.requests import training_request
from spotline.domain.settings import Settings
from spotline.domain.states import TERMINAL_RUN_STATES
from spotline.wiring import Wiring

logger = logging.getLogger(__name__)

NOTEBOOK_PREFIX = "notebook/"  # the source key a notebook run is known by (nothing is written there)
VALIDATE_ROLE_ENV = "SAGEMAKER_VALIDATE_ROLE"
STATE_FILE = "stack.json"  # what `spotline local up` writes into its workdir
MAX_REPORT_BYTES = 5 * 1024 * 1024


class NotebookError(Exception):
    """The config, the stack or the launch cannot be used; the message says why."""


@dataclass(frozen=True)
class Stack:
    """A deployed or local spotline stack: its settings (the functions' environment) and endpoints."""

    settings: Settings
    endpoints: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> Stack:
        """A stack from the functions' ``SPOTLINE_*`` variables (get-function-configuration's)."""
        return cls(Settings.from_env(env))

    @classmethod
    def local(cls, workdir: str | Path = ".spotline/local") -> Stack:
        """The local stack `spotline local up` runs in ``workdir``."""
        path = Path(workdir) / STATE_FILE
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise NotebookError(f"no local stack in {workdir} ({e}): start `spotline local up`") from e
        return cls(Settings.from_env(state["function_env"]), dict(state["endpoints"]))

    def use_endpoints(self) -> None:
        """Point this process's boto3 clients (the SDK's too) at the stack's endpoints (local stacks)."""
        os.environ.update(self.endpoints)
        os.environ.setdefault(VALIDATE_ROLE_ENV, "false")


@dataclass(frozen=True)
class RunResult:
    """How the run ended: its status, attempts and the report spotline published."""

    run_id: str
    status: str
    attempts: tuple[Mapping[str, Any], ...]
    report: Mapping[str, Any]

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"


@dataclass
class NotebookRun:
    """One config, as the run it becomes: its id, its first job's request, and what follows it."""

    stack: Stack
    config: RunConfig
    config_bytes: bytes
    source_key: str
    run_id: str
    request: dict[str, Any]
    wiring: Wiring

    @classmethod
    def from_file(cls, path: str | Path, stack: Stack) -> NotebookRun:
        file = Path(path)
        return cls.from_text(file.read_bytes(), stack, name=file.name)

    @classmethod
    def from_text(cls, data: bytes | str, stack: Stack, *, name: str = "notebook.yaml") -> NotebookRun:
        """Validate ``data`` with the launch function's own rules; the same text is the same run."""
        raw = data.encode() if isinstance(data, str) else data
        wiring = Wiring(stack.settings)
        config = parse_run_config(
            raw, wiring.training_launcher.context, max_bytes=stack.settings.max_config_bytes
        )
        source_key = NOTEBOOK_PREFIX + Path(name).name
        digest = hashlib.sha256(raw).hexdigest()[:32]
        run_id = run_id_for_object(stack.settings.bucket, source_key, digest, kind="notebook")
        request = training_request(
            settings=stack.settings,
            run_id=run_id,
            config=config,
            config_key=layout.run_config_key(run_id),
            source_key=source_key,
        )
        return cls(stack, config, raw, source_key, run_id, request, wiring)

    @property
    def job_name(self) -> str:
        return str(self.request["TrainingJobName"])

    def model_trainer(self) -> Any:
        """A ``sagemaker.train.ModelTrainer`` that creates exactly :attr:`request`."""
        return model_trainer_for(self.request)

    def launch(self, trainer: Any | None = None) -> str:
        """Write the config snapshot, then start the first job (once: a second call finds it)."""
        self.wiring.bucket.put(layout.run_config_key(self.run_id), self.config_bytes, "application/yaml")
        if self.wiring.jobs.exists(self.job_name):
            logger.info("job %s exists already: following it", self.job_name)
            return self.job_name
        (trainer or self.model_trainer()).train(wait=False, logs=False)
        return self.job_name

    def wait(
        self,
        *,
        poll_s: float = 5.0,
        stall_s: float | None = None,
        out: TextIO | None = sys.stderr,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> RunResult:
        """Follow the run (not one job) until spotline has settled it and published its report.

        Prints one progress line per change (attempt, status, job); ``stall_s``: give up when
        nothing has moved for that long (None: wait as long as the run does)."""
        seen, moved = "", clock()
        while True:
            state, report = self._state()
            if state != seen:
                seen, moved = state, clock()
                if out is not None:
                    print(f"[spotline] {self.run_id}: {state}", file=out, flush=True)
            if report is not None:
                return RunResult(
                    run_id=self.run_id,
                    status=str(report.get("status")),
                    attempts=tuple(report.get("attempts") or ()),
                    report=report,
                )
            if stall_s is not None and clock() - moved > stall_s:
                raise NotebookError(f"run {self.run_id}: nothing moved for {stall_s:.0f} s (last: {state})")
            sleep(poll_s)

    def _state(self) -> tuple[str, dict[str, Any] | None]:
        run = self.wiring.ledger.get_run(self.run_id)
        if run is None:  # the ledger learns of the run when its first job ends
            try:
                job = self.wiring.jobs.describe(job_name(self.stack.settings.job_prefix, self.run_id, 1))
            except JobNotFound:
                return "not launched", None
            return f"attempt 1 {job.get('TrainingJobStatus')}/{job.get('SecondaryStatus')}", None
        state = f"attempt {run.attempt} {run.status}"
        if run.status not in TERMINAL_RUN_STATES:
            return state, None
        try:
            data = self.wiring.bucket.read(layout.run_report_key(self.run_id), cap=MAX_REPORT_BYTES)
        except ObjectMissing:
            return state, None  # settled, its report on the way
        return state, json.loads(data)


def _shape(cls: Any, fields: Mapping[str, Any]) -> Any:
    """An SDK shape from the request's fields that are set."""
    return cls(**{k: v for k, v in fields.items() if v is not None})


def model_trainer_for(request: Mapping[str, Any]) -> Any:
    """The SDK's ModelTrainer for a CreateTrainingJob ``request``, name and all."""
    from sagemaker.core.shapes import DataSource, S3DataSource
    from sagemaker.train.configs import (
        Channel,
        CheckpointConfig,
        Compute,
        MetricDefinition,
        Networking,
        OutputDataConfig,
        RetryStrategy,
        StoppingCondition,
        Tag,
    )

    spec, resources = request["AlgorithmSpecification"], request["ResourceConfig"]
    stopping, output = request["StoppingCondition"], request["OutputDataConfig"]
    vpc = request.get("VpcConfig") or {}
    channels = [
        Channel(
            channel_name=c["ChannelName"],
            data_source=DataSource(
                s3_data_source=_shape(
                    S3DataSource,
                    {
                        "s3_data_type": c["DataSource"]["S3DataSource"]["S3DataType"],
                        "s3_uri": c["DataSource"]["S3DataSource"]["S3Uri"],
                        "s3_data_distribution_type": c["DataSource"]["S3DataSource"].get(
                            "S3DataDistributionType"
                        ),
                    },
                )
            ),
            **({"input_mode": c["InputMode"]} if c.get("InputMode") else {}),
        )
        for c in request.get("InputDataConfig") or ()
    ]
    trainer = _named_trainer_class()(
        spotline_job_name=request["TrainingJobName"],
        role=request["RoleArn"],
        base_job_name=request["TrainingJobName"],
        training_image=spec["TrainingImage"],
        training_input_mode=spec.get("TrainingInputMode", "File"),
        compute=_shape(
            Compute,
            {
                "instance_type": resources["InstanceType"],
                "instance_count": resources["InstanceCount"],
                "volume_size_in_gb": resources.get("VolumeSizeInGB"),
                "volume_kms_key_id": resources.get("VolumeKmsKeyId"),
                "enable_managed_spot_training": bool(request.get("EnableManagedSpotTraining")),
            },
        ),
        stopping_condition=_shape(
            StoppingCondition,
            {
                "max_runtime_in_seconds": stopping.get("MaxRuntimeInSeconds"),
                "max_wait_time_in_seconds": stopping.get("MaxWaitTimeInSeconds"),
            },
        ),
        output_data_config=_shape(
            OutputDataConfig,
            {
                "s3_output_path": output["S3OutputPath"],
                "kms_key_id": output.get("KmsKeyId"),
                "compression_type": output.get("CompressionType", "GZIP"),
            },
        ),
        checkpoint_config=(
            CheckpointConfig(s3_uri=request["CheckpointConfig"]["S3Uri"])
            if request.get("CheckpointConfig")
            else None
        ),
        input_data_config=channels,
        hyperparameters=dict(request.get("HyperParameters") or {}),
        environment=dict(request.get("Environment") or {}),
        tags=[Tag(key=t["Key"], value=t["Value"]) for t in request.get("Tags") or ()],
        networking=_shape(
            Networking,
            {
                "subnets": vpc.get("Subnets"),
                "security_group_ids": vpc.get("SecurityGroupIds"),
                "enable_network_isolation": request.get("EnableNetworkIsolation"),
                "enable_inter_container_traffic_encryption": request.get(
                    "EnableInterContainerTrafficEncryption"
                ),
            },
        ),
    )
    trainer.with_metric_definitions(
        [MetricDefinition(name=d["Name"], regex=d["Regex"]) for d in spec.get("MetricDefinitions") or ()]
    )
    if request.get("RetryStrategy"):
        trainer.with_retry_strategy(
            RetryStrategy(maximum_retry_attempts=request["RetryStrategy"]["MaximumRetryAttempts"])
        )
    return trainer


@functools.cache
def _named_trainer_class() -> Any:
    """ModelTrainer, keeping the job name it is given (the SDK appends a timestamp to it)."""
    from pydantic import PrivateAttr
    from sagemaker.train import ModelTrainer

    class SpotlineModelTrainer(ModelTrainer):  # type: ignore[misc]
        _spotline_job_name: str = PrivateAttr(default="")

        def __init__(self, *, spotline_job_name: str, **fields: Any) -> None:
            super().__init__(**fields)
            self._spotline_job_name = spotline_job_name

        def _create_training_job_args(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            request: dict[str, Any] = super()._create_training_job_args(*args, **kwargs)
            key = "TrainingJobName" if "TrainingJobName" in request else "training_job_name"
            request[key] = self._spotline_job_name
            return request

    return SpotlineModelTrainer
