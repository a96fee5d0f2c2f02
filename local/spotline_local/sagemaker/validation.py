"""The checks SageMaker's front end makes, from botocore's own model plus the rules it enforces in code.

The model gives required members, types, lengths, ranges, enums and patterns; on top of that the
real API refuses Managed Spot without MaxWait, MaxWait without Managed Spot, MaxWait below
MaxRuntime and repeated channel names. Messages follow the real service's wording.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sized
from typing import Any


class ApiError(Exception):
    """An error the API returns: ``code`` becomes ``__type``, ``status`` the HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def validation_error(message: str) -> ApiError:
    return ApiError("ValidationException", message)


@functools.cache
def service_model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("sagemaker")


def check_request(operation: str, params: Mapping[str, Any]) -> None:
    """Raise the ValidationException SageMaker would return for ``params`` of ``operation``."""
    from botocore.validate import ParamValidator

    try:
        shape = service_model().operation_model(operation).input_shape
    except Exception as e:  # botocore's OperationNotFoundError
        raise ApiError("UnknownOperationException", f"operation {operation} is not supported") from e
    if shape is None:
        return
    report = ParamValidator().validate(dict(params), shape)
    if report.has_errors():
        raise validation_error(report.generate_report())
    problems: list[str] = []
    _walk(shape, params, "", problems)
    if problems:
        count = len(problems)
        raise validation_error(
            f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(problems)
        )


def _member_path(prefix: str, name: str) -> str:
    camel = name[:1].lower() + name[1:]
    return f"{prefix}.{camel}" if prefix else camel


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None  # a Java-only construct; botocore's client does not check it either


def _check_length(meta: Mapping[str, Any], value: Sized, where: str, what: str, problems: list[str]) -> None:
    """The API model's ``max`` length, in the words of SageMaker's ValidationException."""
    if "max" in meta and len(value) > meta["max"]:
        problems.append(
            f"{where} failed to satisfy constraint: {what} must have length less than or equal to "
            f"{meta['max']}"
        )


def _walk(shape: Any, value: Any, path: str, problems: list[str]) -> None:
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure" and isinstance(value, Mapping):
        for name, member in shape.members.items():
            if name in value:
                _walk(member, value[name], _member_path(path, name), problems)
    elif kind == "list" and isinstance(value, list):
        _check_length(meta, value, f"Value at '{path}'", "Member", problems)
        for i, item in enumerate(value):
            _walk(shape.member, item, f"{path}.{i + 1}.member", problems)
    elif kind == "map" and isinstance(value, Mapping):
        _check_length(meta, value, f"Value at '{path}'", "Map", problems)
        for key, item in value.items():
            _walk(shape.key, key, f"{path}.key", problems)
            _walk(shape.value, item, f"{path}.{key}", problems)
    elif kind == "string" and isinstance(value, str):
        _check_length(meta, value, f"Value '{value}' at '{path}'", "Member", problems)
        if shape.enum and value not in shape.enum:
            problems.append(
                f"Value '{value}' at '{path}' failed to satisfy constraint: Member must satisfy enum value "
                f"set: [{', '.join(shape.enum)}]"
            )
        pattern = meta.get("pattern")
        compiled = _compiled(pattern) if pattern else None
        if compiled is not None and not compiled.fullmatch(value):
            problems.append(
                f"Value '{value}' at '{path}' failed to satisfy constraint: Member must satisfy regular "
                f"expression pattern: {pattern}"
            )
    elif kind in ("integer", "long") and isinstance(value, int) and "max" in meta and value > meta["max"]:
        problems.append(
            f"Value '{value}' at '{path}' failed to satisfy constraint: Member must have value less than or "
            f"equal to {meta['max']}"
        )


def check_training_job_rules(request: Mapping[str, Any]) -> None:
    """The CreateTrainingJob rules that live in SageMaker's code rather than in its model."""
    stopping = request.get("StoppingCondition", {})
    spot = bool(request.get("EnableManagedSpotTraining", False))
    max_wait = stopping.get("MaxWaitTimeInSeconds")
    max_runtime = stopping.get("MaxRuntimeInSeconds", 86400)
    if max_wait is not None and not spot:
        raise validation_error(
            "Invalid MaxWaitTimeInSeconds. It is only supported when EnableManagedSpotTraining is set to true"
        )
    if spot and (max_wait is None or max_wait < max_runtime):
        raise validation_error(
            "Invalid MaxWaitTimeInSeconds. It must be present and be greater than or equal to "
            "MaxRuntimeInSeconds"
        )
    names = [c.get("ChannelName") for c in request.get("InputDataConfig", [])]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise validation_error(f"Channel names must be unique. Repeated: {', '.join(map(str, repeated))}")
    checkpoint = request.get("CheckpointConfig")
    if checkpoint is not None and not str(checkpoint.get("S3Uri", "")).startswith(("s3://", "https://")):
        raise validation_error("CheckpointConfig.S3Uri must be an S3 URI")


def check_tuning_job_rules(request: Mapping[str, Any]) -> None:
    """The CreateHyperParameterTuningJob rules that live in SageMaker's code rather than in its model
    (the "Define Hyperparameter Ranges" and "Stop Training Jobs Early" pages); the trials' own
    definition is checked as a CreateTrainingJob request when each trial starts."""
    config = request["HyperParameterTuningJobConfig"]
    strategy = config.get("Strategy")
    ranges = config.get("ParameterRanges") or {}
    numeric = [
        *(ranges.get("IntegerParameterRanges") or []),
        *(ranges.get("ContinuousParameterRanges") or []),
    ]
    limits = config.get("ResourceLimits") or {}
    if strategy == "Grid" and numeric:
        raise validation_error("The Grid search strategy supports only categorical parameter ranges.")
    if strategy != "Grid" and "MaxNumberOfTrainingJobs" not in limits:
        raise validation_error("MaxNumberOfTrainingJobs is required unless the strategy is Grid.")
    if strategy == "Hyperband" and config.get("TrainingJobEarlyStoppingType") == "Auto":
        raise validation_error("TrainingJobEarlyStoppingType must be Off with the Hyperband strategy.")
    for item in numeric:
        low, high = float(item["MinValue"]), float(item["MaxValue"])
        if low > high:
            raise validation_error(f"MinValue of {item['Name']} must not exceed its MaxValue.")
        if item.get("ScalingType") == "Logarithmic" and low <= 0:
            raise validation_error(f"Logarithmic scaling of {item['Name']} needs values greater than 0.")
        if item.get("ScalingType") == "ReverseLogarithmic" and not (low >= 0 and high < 1):
            raise validation_error(f"Reverse logarithmic scaling of {item['Name']} needs 0 <= x < 1.")
    check_training_job_rules(config_as_training_job(request))


def config_as_training_job(request: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a tuning job's TrainingJobDefinition that a CreateTrainingJob request shares."""
    definition = request.get("TrainingJobDefinition") or {}
    keys = ("StoppingCondition", "EnableManagedSpotTraining", "InputDataConfig", "CheckpointConfig")
    return {k: definition[k] for k in keys if k in definition}
