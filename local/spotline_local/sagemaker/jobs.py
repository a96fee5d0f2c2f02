"""One local training job's record: DescribeTrainingJob's fields, its status transitions and its events.

Statuses move as SageMaker's do: ``InProgress`` (Starting -> Downloading -> Training -> Uploading,
with ``Interrupted`` when Spot capacity is reclaimed), ``Stopping``, then ``Completed``, ``Failed``
(with a FailureReason) or ``Stopped`` (Stopped, MaxRuntimeExceeded, MaxWaitTimeExceeded, Interrupted).
Every change is published as a "SageMaker Training Job State Change" event of the real shape.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from spotline_local.template import ACCOUNT_ID, REGION

TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
STATUS_MESSAGES = {
    "Starting": "Preparing the instances for training",
    "Downloading": "Downloading input data",
    "Training": "Training image download completed. Training in progress.",
    "Uploading": "Uploading generated training model",
    "Completed": "Training job completed",
    "Failed": "Training job failed",
    "Stopping": "Stopping the training job",
    "Stopped": "Training job stopped",
    "Interrupted": "Training job interrupted: the Spot capacity was reclaimed",
    "MaxWaitTimeExceeded": "Training job stopped: the maximum wait time for Spot capacity was exceeded",
    "MaxRuntimeExceeded": "Training job stopped: it exceeded the maximum allowed runtime",
}
_EVENT_FIELDS = (
    "TrainingJobName",
    "TrainingJobArn",
    "TrainingJobStatus",
    "SecondaryStatus",
    "FailureReason",
    "HyperParameters",
    "AlgorithmSpecification",
    "RoleArn",
    "InputDataConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
    "EnableManagedSpotTraining",
    "CheckpointConfig",
    "ModelArtifacts",
    "FinalMetricDataList",
    "TrainingTimeInSeconds",
    "BillableTimeInSeconds",
    "Environment",
    "RetryStrategy",
    "SecondaryStatusTransitions",
)
_TIME_FIELDS = ("CreationTime", "TrainingStartTime", "TrainingEndTime", "LastModifiedTime")


def training_job_arn(name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:training-job/{name.lower()}"


class TrainingJob:
    """Thread-safe record of one job; ``on_change`` receives each state-change event."""

    def __init__(self, request: Mapping[str, Any], on_change: Callable[[dict[str, Any]], None]) -> None:
        now = time.time()
        self._lock = threading.Lock()
        self._on_change = on_change
        self.stop_requested = threading.Event()
        self.tags = {t["Key"]: t.get("Value", "") for t in request.get("Tags", [])}
        self.metrics: list[dict[str, Any]] = []
        self.last_step: int | None = None  # the latest ``step=N`` the container logged
        self.output_lines = 0
        record = {k: copy.deepcopy(v) for k, v in request.items() if k != "Tags"}
        record.update(
            TrainingJobArn=training_job_arn(request["TrainingJobName"]),
            TrainingJobStatus="InProgress",
            SecondaryStatus="Starting",
            CreationTime=now,
            LastModifiedTime=now,
            SecondaryStatusTransitions=[],
            HyperParameters=dict(request.get("HyperParameters", {})),
            EnableManagedSpotTraining=bool(request.get("EnableManagedSpotTraining", False)),
        )
        self._record = record
        self._add_transition("Starting", now)

    @property
    def name(self) -> str:
        return str(self._record["TrainingJobName"])

    @property
    def arn(self) -> str:
        return str(self._record["TrainingJobArn"])

    @property
    def status(self) -> str:
        return str(self._record["TrainingJobStatus"])

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def activity(self) -> tuple[str, str, str, int | None, int]:
        """What changes while the job moves: its statuses, the step it logged, its output so far."""
        with self._lock:
            status, secondary = self._record["TrainingJobStatus"], self._record["SecondaryStatus"]
        return (self.name, str(status), str(secondary), self.last_step, self.output_lines)

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return copy.deepcopy(self._record.get(key, default))

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._record)

    def summary(self) -> dict[str, Any]:
        keys = (
            "TrainingJobName",
            "TrainingJobArn",
            "CreationTime",
            "TrainingEndTime",
            "LastModifiedTime",
            "TrainingJobStatus",
            "SecondaryStatus",
        )
        with self._lock:
            return {k: self._record[k] for k in keys if k in self._record}

    def announce(self) -> None:
        """The creation event (InProgress/Starting), as SageMaker sends when a job is created."""
        with self._lock:
            event = self._event_locked()
        self._on_change(event)

    def _add_transition(self, status: str, now: float, message: str | None = None) -> None:
        transitions = self._record["SecondaryStatusTransitions"]
        if transitions and "EndTime" not in transitions[-1]:
            transitions[-1]["EndTime"] = now
        transitions.append(
            {"Status": status, "StartTime": now, "StatusMessage": message or STATUS_MESSAGES[status]}
        )

    def set_fields(self, **fields: Any) -> None:
        with self._lock:
            self._record.update(fields)

    def move(
        self, secondary: str, status: str | None = None, *, message: str | None = None, **fields: Any
    ) -> None:
        """Change the secondary (and maybe primary) status, record the transition, emit the event."""
        now = time.time()
        with self._lock:
            if self._record["TrainingJobStatus"] in TERMINAL:
                return
            if status is not None:
                self._record["TrainingJobStatus"] = status
            self._record["SecondaryStatus"] = secondary
            self._record["LastModifiedTime"] = now
            self._record.update(fields)
            if status in TERMINAL:
                self._record.setdefault("TrainingEndTime", now)
            self._add_transition(secondary, now, message)
            if status in TERMINAL:
                self._record["SecondaryStatusTransitions"][-1]["EndTime"] = now
            event = self._event_locked()
        self._on_change(event)

    def _event_locked(self) -> dict[str, Any]:
        """PutEvents entry of a "SageMaker Training Job State Change" (times as epoch milliseconds)."""
        detail: dict[str, Any] = {
            k: copy.deepcopy(self._record[k]) for k in _EVENT_FIELDS if k in self._record
        }
        for key in _TIME_FIELDS:
            if key in self._record:
                detail[key] = int(self._record[key] * 1000)
        for transition in detail.get("SecondaryStatusTransitions", []):
            for key in ("StartTime", "EndTime"):
                if key in transition:
                    transition[key] = int(transition[key] * 1000)
        detail["Tags"] = dict(self.tags)
        return {
            "Source": "aws.sagemaker",
            "DetailType": "SageMaker Training Job State Change",
            "Resources": [self._record["TrainingJobArn"]],
            "Detail": detail,
        }
