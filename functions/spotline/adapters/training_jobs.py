"""SageMaker's training-job API, with its errors turned into domain exceptions in one place (the
tuning-job adapter raises the same ones, through :func:`create_job` and :func:`describe_job`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from spotline.adapters import aws


class JobAlreadyExists(Exception):
    """CreateTrainingJob found the name taken: this attempt was already launched."""


class JobNotFound(Exception):
    """DescribeTrainingJob does not know the name."""


class JobNotStoppable(Exception):
    """StopTrainingJob refused: the job is not running any more (it is ending or has ended)."""


class JobRequestRejected(Exception):
    """SageMaker refused the request itself (validation, quota): retrying the same call cannot help."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(f"{code}: {message}")


REJECTED_CODES = frozenset({"ValidationException", "ResourceLimitExceeded", "AccessDeniedException"})
NOT_FOUND_CODES = ("ValidationException", "ResourceNotFound")


def create_job(create: Callable[[], Mapping[str, Any]], name: str, arn_key: str) -> str:
    """Call a Create* API, return the new ARN: :class:`JobAlreadyExists` if ``name`` is taken,
    :class:`JobRequestRejected` if SageMaker refused the request itself."""
    from botocore.exceptions import ClientError

    try:
        response = create()
    except ClientError as e:
        code = aws.error_code(e)
        if code == "ResourceInUse":
            raise JobAlreadyExists(name) from e
        if code in REJECTED_CODES:
            raise JobRequestRejected(code, str(e)) from e
        raise
    return str(response[arn_key])


def describe_job(describe: Callable[[], Mapping[str, Any]], name: str) -> dict[str, Any]:
    """Call a Describe* API: :class:`JobNotFound` if SageMaker does not know ``name``."""
    from botocore.exceptions import ClientError

    try:
        return dict(describe())
    except ClientError as e:
        if aws.error_code(e) in NOT_FOUND_CODES:
            raise JobNotFound(name) from e
        raise


def resource_tags(client: Any, arn: str) -> dict[str, str]:
    """A job's tags (ListTags: the first page, which holds every tag spotline sets)."""
    response = client.list_tags(ResourceArn=arn, MaxResults=100)
    return {str(t["Key"]): str(t.get("Value", "")) for t in response.get("Tags") or []}


class TrainingJobs:
    """Create and describe training jobs; throttling is retried by the client's adaptive mode."""

    client = aws.ServiceClient("sagemaker")

    def __init__(self, client: Any | None = None) -> None:
        self.client = client

    def create(self, request: Mapping[str, Any]) -> str:
        """Create the job, return its ARN; :class:`JobAlreadyExists` if the name is taken."""
        name = str(request["TrainingJobName"])
        return create_job(lambda: self.client.create_training_job(**request), name, "TrainingJobArn")

    def describe(self, name: str) -> dict[str, Any]:
        return describe_job(lambda: self.client.describe_training_job(TrainingJobName=name), name)

    def tags(self, arn: str) -> dict[str, str]:
        return resource_tags(self.client, arn)

    def exists(self, name: str) -> bool:
        try:
            self.describe(name)
        except JobNotFound:
            return False
        return True

    def stop(self, name: str) -> None:
        """Ask SageMaker to stop the job (it ends ``Stopped``); :class:`JobNotStoppable` if it is not
        in progress, :class:`JobNotFound` if there is no such job."""
        from botocore.exceptions import ClientError

        try:
            self.client.stop_training_job(TrainingJobName=name)
        except ClientError as e:
            code = aws.error_code(e)
            if code == "ResourceNotFound":
                raise JobNotFound(name) from e
            if code == "ValidationException":
                raise JobNotStoppable(f"{name}: {e}") from e
            raise
