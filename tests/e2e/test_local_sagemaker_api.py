"""The local SageMaker refuses what the real API refuses for the calls spotline makes (through boto3)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from botocore.exceptions import ClientError

from spotline_local.stack import LOCAL_IMAGE_URI
from tests.e2e.conftest import E2E, TRAIN_CONFIG, wait_for

pytestmark = pytest.mark.slow


def request(name: str, e2e: E2E) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": LOCAL_IMAGE_URI,  # the stack's image: spotline's container
            "TrainingInputMode": "File",
        },
        "RoleArn": "arn:aws:iam::123456789012:role/spotline-local-ExecutionRole",
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{e2e.bucket}/datasets/e2e/train/",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{e2e.bucket}/runs/validation/output/"},
        "ResourceConfig": {"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 1200},
        "EnableManagedSpotTraining": True,
        "CheckpointConfig": {"S3Uri": f"s3://{e2e.bucket}/runs/validation/checkpoints/"},
    }


def error_of(e2e: E2E, params: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        e2e.client("sagemaker").create_training_job(**params)
    error = caught.value.response["Error"]
    return str(error["Code"]), str(error["Message"])


def without_client_validation(e2e: E2E) -> Any:
    """A client that sends what it is given, so the server's own checks are what is tested."""
    import boto3
    from botocore.config import Config

    env = e2e.stack.endpoint_env()
    return boto3.client(
        "sagemaker",
        endpoint_url=env["AWS_ENDPOINT_URL_SAGEMAKER"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(parameter_validation=False, retries={"max_attempts": 1}),
    )


@pytest.mark.parametrize("name", ["bad_name", "-leading-dash", "x" * 64, "trailing-"])
def test_invalid_job_names_are_refused(e2e: E2E, name: str) -> None:
    with pytest.raises(ClientError) as caught:
        without_client_validation(e2e).create_training_job(**request(name, e2e))
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert "trainingJobName" in caught.value.response["Error"]["Message"]


def test_max_wait_below_max_runtime_is_refused(e2e: E2E) -> None:
    params = request("validation-short-wait", e2e)
    params["StoppingCondition"] = {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 300}
    code, message = error_of(e2e, params)
    assert code == "ValidationException"
    assert "MaxWaitTimeInSeconds" in message


def test_max_wait_without_spot_is_refused(e2e: E2E) -> None:
    params = request("validation-no-spot", e2e)
    params["EnableManagedSpotTraining"] = False
    code, message = error_of(e2e, params)
    assert code == "ValidationException"
    assert "EnableManagedSpotTraining" in message


def test_spot_without_max_wait_is_refused(e2e: E2E) -> None:
    params = request("validation-spot-no-wait", e2e)
    params["StoppingCondition"] = {"MaxRuntimeInSeconds": 600}
    assert error_of(e2e, params)[0] == "ValidationException"


def test_an_unknown_instance_type_is_refused(e2e: E2E) -> None:
    params = copy.deepcopy(request("validation-instance", e2e))
    params["ResourceConfig"]["InstanceType"] = "ml.nope.huge"
    with pytest.raises(ClientError) as caught:
        without_client_validation(e2e).create_training_job(**params)
    assert "enum value set" in caught.value.response["Error"]["Message"]


def test_a_taken_name_is_resource_in_use_and_stop_list_describe_answer(e2e: E2E) -> None:
    sagemaker = e2e.client("sagemaker")
    params = request("validation-duplicate", e2e)
    arn = sagemaker.create_training_job(**params)["TrainingJobArn"]
    assert arn.endswith(":training-job/validation-duplicate")
    code, message = error_of(e2e, params)
    assert code == "ResourceInUse"
    assert arn in message

    # the local stack denies this job capacity: it fails as SageMaker does, with a CapacityError
    def failed() -> dict[str, Any] | None:
        described = sagemaker.describe_training_job(TrainingJobName="validation-duplicate")
        return described if described["TrainingJobStatus"] == "Failed" else None

    described = wait_for("the job to fail", failed)
    assert described["FailureReason"].startswith("CapacityError:")
    assert described["SecondaryStatus"] == "Failed"
    names = [
        j["TrainingJobName"]
        for j in sagemaker.list_training_jobs(NameContains="validation-")["TrainingJobSummaries"]
    ]
    assert names == ["validation-duplicate"]
    with pytest.raises(ClientError) as stopped:
        sagemaker.stop_training_job(TrainingJobName="validation-duplicate")
    assert stopped.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as missing:
        sagemaker.describe_training_job(TrainingJobName="validation-missing")
    assert missing.value.response["Error"]["Code"] == "ValidationException"


def with_config(e2e: E2E, name: str, config: str) -> dict[str, Any]:
    """A request as spotline makes it: the config as its own channel, no Spot (nothing to wait for)."""
    e2e.put(f"runs/{name}/config.yaml", config)
    params = request(name, e2e)
    params["InputDataConfig"].append(
        {
            "ChannelName": "config",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{e2e.bucket}/runs/{name}/config.yaml",
                }
            },
        }
    )
    params["EnableManagedSpotTraining"] = False
    params["StoppingCondition"] = {"MaxRuntimeInSeconds": 600}
    return params


def status_of(e2e: E2E, name: str, wanted: str) -> dict[str, Any] | None:
    described: dict[str, Any] = e2e.client("sagemaker").describe_training_job(TrainingJobName=name)
    return described if described["TrainingJobStatus"] == wanted else None


def test_a_container_failure_becomes_the_failure_reason(e2e: E2E, dataset: object) -> None:
    params = with_config(e2e, "probe-user-error", TRAIN_CONFIG.replace("max_iter: 60", "max_iter: 0"))
    e2e.client("sagemaker").create_training_job(**params)
    failed = wait_for("the job to fail", lambda: status_of(e2e, "probe-user-error", "Failed"))
    assert failed["FailureReason"].startswith("AlgorithmError: UserError:")
    assert "solver.max_iter" in failed["FailureReason"]


def test_a_stopped_job_saves_and_uploads_its_model(e2e: E2E, dataset: object) -> None:
    name = "probe-stop"
    params = with_config(e2e, name, TRAIN_CONFIG.replace("max_iter: 60", "max_iter: 100000"))
    sagemaker = e2e.client("sagemaker")
    sagemaker.create_training_job(**params)

    def training() -> bool | None:
        job = sagemaker.describe_training_job(TrainingJobName=name)
        return (
            True
            if job["SecondaryStatus"] == "Training" and e2e.keys("runs/validation/checkpoints/")
            else None
        )

    wait_for("the job to train and checkpoint", training)
    sagemaker.stop_training_job(TrainingJobName=name)
    stopped = wait_for("the job to stop", lambda: status_of(e2e, name, "Stopped"))
    assert stopped["SecondaryStatus"] == "Stopped"
    assert "Stopping" in [t["Status"] for t in stopped["SecondaryStatusTransitions"]]
    assert f"runs/validation/output/{name}/output/model.tar.gz" in e2e.keys("runs/validation/output/")


def test_max_runtime_stops_the_job(e2e: E2E, dataset: object) -> None:
    params = with_config(e2e, "probe-max-runtime", TRAIN_CONFIG.replace("max_iter: 60", "max_iter: 100000"))
    params["StoppingCondition"] = {"MaxRuntimeInSeconds": 4}
    e2e.client("sagemaker").create_training_job(**params)
    stopped = wait_for("the job to run out of time", lambda: status_of(e2e, "probe-max-runtime", "Stopped"))
    assert stopped["SecondaryStatus"] == "MaxRuntimeExceeded"


def test_an_internal_error_fails_the_job_as_sagemaker_says_it(e2e: E2E) -> None:
    e2e.client("sagemaker").create_training_job(**request("probe-internal", e2e))
    failed = wait_for("the job to fail", lambda: status_of(e2e, "probe-internal", "Failed"))
    assert failed["FailureReason"].startswith("InternalServerError:")


def test_an_image_it_has_no_command_for_fails_as_an_image_sagemaker_cannot_pull(
    e2e: E2E, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)  # no container engine either
    params = request("probe-unknown-image", e2e)
    params["AlgorithmSpecification"]["TrainingImage"] = "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1"
    e2e.client("sagemaker").create_training_job(**params)
    failed = wait_for("the job to fail", lambda: status_of(e2e, "probe-unknown-image", "Failed"), 60)
    assert failed["FailureReason"].startswith("ClientError: the local SageMaker has no command for image")
    assert "SPOTLINE_LOCAL_IMAGES" in failed["FailureReason"]
    assert failed["BillableTimeInSeconds"] == 0
