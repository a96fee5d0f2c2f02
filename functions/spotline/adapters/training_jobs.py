"""SageMaker's training-job API, with its errors turned into domain exceptions in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spotline.adapters import aws


class JobAlreadyExists(Exception):
    """CreateTrainingJob found the name taken: this attempt was already launched."""


class JobNotFound(Exception):
    """DescribeTrainingJob does not know the name."""


class JobRequestRejected(Exception):
    """SageMaker refused the request itself (validation, quota): retrying the same call cannot help."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(f"{code}: {message}")


REJECTED_CODES = frozenset({"ValidationException", "ResourceLimitExceeded", "AccessDeniedException"})


class TrainingJobs:
    """Create and describe training jobs; throttling is retried by the client's adaptive mode."""

    client = aws.ServiceClient("sagemaker")

    def __init__(self, client: Any | None = None) -> None:
        self.client = client

    def create(self, request: Mapping[str, Any]) -> str:
        """Create the job, return its ARN; :class:`JobAlreadyExists` if the name is taken."""
        from botocore.exceptions import ClientError

        try:
            response = self.client.create_training_job(**request)
        except ClientError as e:
            code = aws.error_code(e)
            if code == "ResourceInUse":
                raise JobAlreadyExists(str(request["TrainingJobName"])) from e
            if code in REJECTED_CODES:
                raise JobRequestRejected(code, str(e)) from e
            raise
        return str(response["TrainingJobArn"])

    def describe(self, name: str) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            return dict(self.client.describe_training_job(TrainingJobName=name))
        except ClientError as e:
            if aws.error_code(e) in ("ValidationException", "ResourceNotFound"):
                raise JobNotFound(name) from e
            raise

    def tags(self, arn: str) -> dict[str, str]:
        """The job's tags (ListTags: the first page, which holds every tag spotline sets)."""
        response = self.client.list_tags(ResourceArn=arn, MaxResults=100)
        return {str(t["Key"]): str(t.get("Value", "")) for t in response.get("Tags") or []}

    def exists(self, name: str) -> bool:
        try:
            self.describe(name)
        except JobNotFound:
            return False
        return True
