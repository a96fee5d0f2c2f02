"""A local SageMaker: the training and tuning calls spotline makes, over the real JSON protocol.

boto3 and the AWS CLI reach it through ``AWS_ENDPOINT_URL_SAGEMAKER``; the functions' code does not
change. Requests are checked as the real front end checks them (botocore's model plus SageMaker's own
rules), jobs run as local processes (:mod:`spotline_local.sagemaker.runner`), tuning jobs run their
trials as such jobs (:mod:`spotline_local.sagemaker.tuning`), and every status change is put on the
local EventBridge as a "SageMaker Training Job State Change" or "SageMaker HyperParameter Tuning Job
State Change" event.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from spotline_local.faults import Fault, fault_for
from spotline_local.sagemaker.jobs import TrainingJob
from spotline_local.sagemaker.runner import JobRunner, RunnerSettings
from spotline_local.sagemaker.tuning import TuningJob
from spotline_local.sagemaker.validation import (
    ApiError,
    check_request,
    check_training_job_rules,
    check_tuning_job_rules,
    validation_error,
)

log = logging.getLogger(__name__)

TARGET_PREFIX = "SageMaker."


class LocalSageMaker:
    """Training jobs in memory, each run by a :class:`JobRunner` thread."""

    def __init__(
        self,
        *,
        clients: Any,
        settings: RunnerSettings,
        faults: list[Fault] | None = None,
        max_concurrent_jobs: int = 2,
        event_bus: str = "default",
    ) -> None:
        self.clients = clients
        self.settings = settings
        self.faults = list(faults or [])
        self.event_bus = event_bus
        self.jobs: dict[str, TrainingJob] = {}
        self.tuning_jobs: dict[str, TuningJob] = {}
        self.threads: list[threading.Thread] = []
        self.runners: list[JobRunner] = []
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(max_concurrent_jobs)
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self._operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "CreateTrainingJob": self.create_training_job,
            "DescribeTrainingJob": self.describe_training_job,
            "ListTrainingJobs": self.list_training_jobs,
            "StopTrainingJob": self.stop_training_job,
            "ListTags": self.list_tags,
            "AddTags": self.add_tags,
            "CreateHyperParameterTuningJob": self.create_hyper_parameter_tuning_job,
            "DescribeHyperParameterTuningJob": self.describe_hyper_parameter_tuning_job,
            "ListTrainingJobsForHyperParameterTuningJob": self.list_training_jobs_for_tuning_job,
            "StopHyperParameterTuningJob": self.stop_hyper_parameter_tuning_job,
        }

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = self._operations.get(operation)
        if handler is None:
            raise ApiError("UnknownOperationException", f"{operation} is not offered by the local SageMaker")
        check_request(operation, params)
        return handler(params)

    # -- operations --------------------------------------------------------------------------------

    def create_training_job(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"TrainingJobArn": self._start_job(params).arn}

    def _start_trial(self, params: dict[str, Any], tuning_job_arn: str) -> TrainingJob:
        """A tuning job's trial: a training job that knows its tuning job (``TuningJobArn``)."""
        check_request("CreateTrainingJob", params)
        return self._start_job(params, tuning_job_arn=tuning_job_arn)

    def _start_job(self, params: dict[str, Any], *, tuning_job_arn: str | None = None) -> TrainingJob:
        check_training_job_rules(params)
        name = params["TrainingJobName"]
        with self._lock:
            existing = self.jobs.get(name)
            if existing is not None:
                raise ApiError(
                    "ResourceInUse",
                    "Training job names must be unique within an AWS account and region, and a training job "
                    f"with this name already exists ({existing.arn})",
                )
            job = TrainingJob(params, self._emit)
            if tuning_job_arn is not None:
                job.set_fields(TuningJobArn=tuning_job_arn)
            self.jobs[name] = job
        job.announce()
        runner = JobRunner(
            job,
            clients=self.clients,
            settings=self.settings,
            fault=fault_for(name, self.faults),
            slots=self._slots,
        )
        self.runners.append(runner)
        self.threads.append(runner.start())
        log.info("training job %s created", name)
        return job

    def create_hyper_parameter_tuning_job(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["HyperParameterTuningJobName"]
        check_tuning_job_rules(params)
        parents = []
        for parent in (params.get("WarmStartConfig") or {}).get("ParentHyperParameterTuningJobs") or []:
            known = self.tuning_jobs.get(parent["HyperParameterTuningJobName"])
            if known is None or not known.terminal:
                parent_name = parent["HyperParameterTuningJobName"]
                raise validation_error(f"Parent tuning job {parent_name} does not exist or has not ended.")
            parents.append(known)
        with self._lock:
            existing = self.tuning_jobs.get(name)
            if existing is not None:
                raise ApiError("ResourceInUse", f"Hyperparameter tuning job {existing.arn} already exists.")
            tuning = TuningJob(params, start_trial=self._start_trial, emit=self._emit, parents=parents)
            self.tuning_jobs[name] = tuning
        self.threads.append(tuning.start())
        log.info("tuning job %s created", name)
        return {"HyperParameterTuningJobArn": tuning.arn}

    def _tuning_job(self, name: str) -> TuningJob:
        tuning = self.tuning_jobs.get(name)
        if tuning is None:
            raise ApiError("ResourceNotFound", f"Amazon SageMaker can't find a tuning job with name {name}")
        return tuning

    def describe_hyper_parameter_tuning_job(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._tuning_job(params["HyperParameterTuningJobName"]).describe()

    def list_training_jobs_for_tuning_job(self, params: dict[str, Any]) -> dict[str, Any]:
        trials = self._tuning_job(params["HyperParameterTuningJobName"]).summaries()
        if params.get("StatusEquals"):
            trials = [t for t in trials if t["TrainingJobStatus"] == params["StatusEquals"]]
        if params.get("SortBy") == "FinalObjectiveMetricValue":
            trials = [t for t in trials if "FinalHyperParameterTuningJobObjectiveMetric" in t]
            trials.sort(key=lambda t: t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
        else:
            key = {"Name": "TrainingJobName", "Status": "TrainingJobStatus"}.get(
                params.get("SortBy", ""), "CreationTime"
            )
            trials.sort(key=lambda t: t[key])
        if params.get("SortOrder", "Descending") == "Descending":
            trials.reverse()
        start = int(params.get("NextToken") or 0)
        size = int(params.get("MaxResults", 10))
        response: dict[str, Any] = {"TrainingJobSummaries": trials[start : start + size]}
        if start + size < len(trials):
            response["NextToken"] = str(start + size)
        return response

    def stop_hyper_parameter_tuning_job(self, params: dict[str, Any]) -> dict[str, Any]:
        tuning = self._tuning_job(params["HyperParameterTuningJobName"])
        if tuning.status != "InProgress":
            raise validation_error(f"The tuning job is in status {tuning.status} and cannot be stopped.")
        tuning.request_stop()
        return {}

    def _job(self, name: str, code: str = "ValidationException") -> TrainingJob:
        job = self.jobs.get(name)
        if job is None:
            raise ApiError(code, "Requested resource not found.")
        return job

    def describe_training_job(self, params: dict[str, Any]) -> dict[str, Any]:
        record = self._job(params["TrainingJobName"]).describe()
        return record

    def list_training_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        jobs = [j.summary() for j in list(self.jobs.values())]
        if params.get("NameContains"):
            jobs = [j for j in jobs if params["NameContains"].lower() in j["TrainingJobName"].lower()]
        if params.get("StatusEquals"):
            jobs = [j for j in jobs if j["TrainingJobStatus"] == params["StatusEquals"]]
        for key, field, after in (
            ("CreationTimeAfter", "CreationTime", True),
            ("CreationTimeBefore", "CreationTime", False),
            ("LastModifiedTimeAfter", "LastModifiedTime", True),
            ("LastModifiedTimeBefore", "LastModifiedTime", False),
        ):
            if key in params:
                bound = _epoch(params[key])
                jobs = [j for j in jobs if (j[field] > bound) == after]
        sort_key = {"Name": "TrainingJobName", "Status": "TrainingJobStatus"}.get(
            params.get("SortBy", ""), "CreationTime"
        )
        jobs.sort(key=lambda j: j[sort_key], reverse=params.get("SortOrder", "Ascending") == "Descending")
        start = int(params.get("NextToken") or 0)
        size = int(params.get("MaxResults", 10))
        page = jobs[start : start + size]
        response: dict[str, Any] = {"TrainingJobSummaries": page}
        if start + size < len(jobs):
            response["NextToken"] = str(start + size)
        return response

    def stop_training_job(self, params: dict[str, Any]) -> dict[str, Any]:
        job = self._job(params["TrainingJobName"], "ResourceNotFound")
        if job.status != "InProgress":
            raise validation_error(
                f"The request was rejected because the training job is in status {job.status}."
            )
        job.stop_requested.set()
        return {}

    def _job_by_arn(self, arn: str) -> TrainingJob | TuningJob:
        jobs: list[TrainingJob | TuningJob] = [*self.jobs.values(), *self.tuning_jobs.values()]
        for job in jobs:
            if job.arn == arn:
                return job
        raise validation_error(f"Resource {arn} not found.")

    def list_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        job = self._job_by_arn(params["ResourceArn"])
        return {"Tags": [{"Key": k, "Value": v} for k, v in job.tags.items()]}

    def add_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        job = self._job_by_arn(params["ResourceArn"])
        job.tags.update({t["Key"]: t.get("Value", "") for t in params["Tags"]})
        return {"Tags": params["Tags"]}

    # -- events ------------------------------------------------------------------------------------

    def _emit(self, event: dict[str, Any]) -> None:
        entry = {**event, "Detail": json.dumps(event["Detail"], default=str), "EventBusName": self.event_bus}
        try:
            response = self.clients("events").put_events(Entries=[entry])
            if response.get("FailedEntryCount"):
                log.error("state-change event refused: %s", response["Entries"])
        except Exception:
            detail = event["Detail"]
            name = detail.get("TrainingJobName") or detail.get("HyperParameterTuningJobName")
            log.exception("could not put the state-change event of %s", name)
        for listener in list(self.listeners):
            listener(event)

    def activity(self) -> tuple[tuple[str, str, str, int | None, int], ...]:
        """Every job's :meth:`TrainingJob.activity`: changes whenever any job moves."""
        return tuple(job.activity() for job in list(self.jobs.values()))

    def wait_idle(self, timeout: float | None = None) -> None:
        for thread in list(self.threads):
            thread.join(timeout)

    def stop_all(self, grace_s: float = 30.0) -> None:
        """Stop every job (SIGTERM: each checkpoints and exits); kill what still runs after ``grace_s``."""
        for tuning in list(self.tuning_jobs.values()):
            if not tuning.terminal:
                tuning.request_stop()
        for job in list(self.jobs.values()):
            if not job.terminal:
                job.stop_requested.set()
        deadline = time.monotonic() + grace_s
        for thread in list(self.threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        for runner in list(self.runners):
            runner.kill()


def _epoch(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


class _Handler(BaseHTTPRequestHandler):
    service: LocalSageMaker
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b"{}"
        target = self.headers.get("X-Amz-Target", "")
        operation = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else target
        try:
            params = json.loads(body or b"{}")
            if not isinstance(params, dict):
                raise validation_error("request body must be a JSON object")
            result = self.service.call(operation, params)
            self._reply(200, result)
        except ApiError as e:
            self._reply(e.status, {"__type": e.code, "message": e.message}, error=e.code)
        except json.JSONDecodeError:
            self._reply(
                400,
                {"__type": "SerializationException", "message": "malformed JSON"},
                error="SerializationException",
            )
        except Exception as e:
            log.exception("local SageMaker failed on %s", operation)
            self._reply(500, {"__type": "InternalFailure", "message": str(e)}, error="InternalFailure")

    def _reply(self, status: int, payload: Mapping[str, Any], error: str | None = None) -> None:
        data = json.dumps(payload, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", "local")
        if error:
            self.send_header("x-amzn-ErrorType", error)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sagemaker %s", format % args)


class SageMakerServer:
    """The HTTP front of a :class:`LocalSageMaker` on a loopback port."""

    def __init__(self, service: LocalSageMaker, host: str = "127.0.0.1", port: int = 0) -> None:
        handler = type("SageMakerHandler", (_Handler,), {"service": service})
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self.service = service
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="local-sagemaker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
