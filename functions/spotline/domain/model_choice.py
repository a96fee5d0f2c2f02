"""The model an inference batch runs with: where its archive is, where it came from, and the
inference overrides its ``_job.yaml`` set. Kept with the batch's close and each of its runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from spotline.domain.plain import plain_fields


class ModelSource(StrEnum):
    PROMOTED = "promoted"  # the ledger's promoted model
    JOB_FILE = "job-file"  # named by the folder's _job.yaml (a run id or an s3:// archive)


@dataclass(frozen=True)
class ModelChoice:
    uri: str
    source: ModelSource
    run_id: str | None = None
    lineage: Mapping[str, Any] = field(default_factory=dict)
    hyperparameters: Mapping[str, str] = field(default_factory=dict)
    job_file_key: str | None = None
    job_file_version: str | None = None

    def to_item(self) -> dict[str, Any]:
        return plain_fields(self)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ModelChoice:
        return cls(
            uri=str(item["uri"]),
            source=ModelSource(item["source"]),
            run_id=_optional_text(item.get("run_id")),
            lineage=dict(item.get("lineage") or {}),
            hyperparameters={str(k): str(v) for k, v in (item.get("hyperparameters") or {}).items()},
            job_file_key=_optional_text(item.get("job_file_key")),
            job_file_version=_optional_text(item.get("job_file_version")),
        )


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)
