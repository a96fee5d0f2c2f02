"""SageMaker's hyperparameter-tuning API, with its errors turned into the training-job adapter's
domain exceptions (a name taken, a name unknown, a request refused)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spotline.adapters import aws
from spotline.adapters.training_jobs import (
    NOT_FOUND_CODES,
    create_job,
    describe_job,
)

# ListTrainingJobsForHyperParameterTuningJob returns at most 100 trials a page.
TRIALS_PAGE = 100


class TuningJobs:
    """Create, describe, list the trials of and stop tuning jobs."""

    client = aws.ServiceClient("sagemaker")

    def __init__(self, client: Any | None = None) -> None:
        self.client = client

    def create(self, request: Mapping[str, Any]) -> str:
        """Create the tuning job, return its ARN; :class:`JobAlreadyExists` if the name is taken."""
        name = str(request["HyperParameterTuningJobName"])
        create = self.client.create_hyper_parameter_tuning_job
        return create_job(lambda: create(**request), name, "HyperParameterTuningJobArn")

    def describe(self, name: str) -> dict[str, Any]:
        return describe_job(
            lambda: self.client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name), name
        )

    def trials(self, name: str, *, limit: int) -> list[dict[str, Any]]:
        """The tuning job's trial summaries, oldest first, at most ``limit`` (its trial count)."""
        summaries: list[dict[str, Any]] = []
        request: dict[str, Any] = {
            "HyperParameterTuningJobName": name,
            "MaxResults": TRIALS_PAGE,
            "SortBy": "CreationTime",
            "SortOrder": "Ascending",
        }
        while len(summaries) < limit:
            response = self.client.list_training_jobs_for_hyper_parameter_tuning_job(**request)
            summaries.extend(response.get("TrainingJobSummaries") or [])
            token = response.get("NextToken")
            if not token:
                break
            request["NextToken"] = token
        return summaries[:limit]

    def stop(self, name: str) -> bool:
        """Ask the tuning job to stop (its running trials stop with it); False if it is not running."""
        from botocore.exceptions import ClientError

        try:
            self.client.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        except ClientError as e:
            if aws.error_code(e) in NOT_FOUND_CODES:
                return False
            raise
        return True
