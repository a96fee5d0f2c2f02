"""spotline never writes where users write: the one writer refuses keys outside runs/ and results/."""

from __future__ import annotations

import pytest

from spotline.adapters.drop_bucket import DropBucket
from spotline.domain.settings import Settings

SETTINGS = Settings(
    bucket="drop",
    table="t",
    topic_arn="arn:aws:sns:eu-west-3:123456789012:t",
    image_uri="i",
    execution_role_arn="arn:aws:iam::123456789012:role/r",
    job_prefix="spotline",
)


class _Recorder:
    def __init__(self) -> None:
        self.keys: list[str] = []

    def put_object(self, **request: object) -> None:
        self.keys.append(str(request["Key"]))


@pytest.mark.parametrize("key", ["configs/x.yaml", "inference/b/x.json", "datasets/x", "x.json", "runs"])
def test_writes_outside_spotlines_prefixes_are_refused(key: str) -> None:
    recorder = _Recorder()
    with pytest.raises(ValueError, match="spotline writes only under"):
        DropBucket(SETTINGS, recorder).put(key, b"{}", "application/json")
    assert recorder.keys == []


def test_writes_under_runs_and_results_go_through() -> None:
    recorder = _Recorder()
    bucket = DropBucket(SETTINGS, recorder)
    bucket.put_json("runs/r/report.json", {"a": 1})
    bucket.put_lines("results/b/predictions.jsonl", [{"image": "x"}])
    assert recorder.keys == ["runs/r/report.json", "results/b/predictions.jsonl"]
