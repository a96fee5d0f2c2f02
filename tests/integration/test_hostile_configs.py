"""Hostile configs, generated: random numbers, strings and structures in every key of the schema.

Whatever is dropped under configs/ is either rejected — a report naming the problems and one
bounded alert, no job — or launched and tracked: the job exists, the run is RUNNING, and when the
job is interrupted the job-state function relaunches or settles the run. Never a raise that
leaves a job untracked.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spotline.adapters.notifier import MAX_MESSAGE_BYTES
from spotline.config import RunConfig
from spotline.config.schema import describe
from spotline.domain import layout
from spotline.domain.events import parse_object_created
from spotline.domain.states import RunStatus
from tests.support.aws_account import BUCKET
from tests.support.events import s3_object_created
from tests.support.recovery import Recovery

BASE: dict[str, Any] = {
    "job": {"instance_type": "ml.g4dn.xlarge", "max_runtime": "1h", "channels": {"train": "datasets/rail/"}},
    "solver": {"max_iter": 10_000},
}
DEFAULTS = {path: default for path, default, _ in describe(RunConfig)}
KEYS = sorted(DEFAULTS)
_counter = itertools.count()

numbers = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 1e-300, 1e300, 1e-131, 1e126, 10**39, 2**63, -0.0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**45), max_value=10**45),
    st.sampled_from([0, 0.01, 0.6, 16, 3600]),
)
texts = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["ml.p4d.24xlarge", "ml.g5.xlarge", "10h", "0s", "1e-5", ".nan", "train", "s3://x/y"]),
    st.sampled_from(["~", "yes", "datasets/../etc", "inference", "x" * 3000, "défauts é", "\U0001f600"]),
)
scalars = st.one_of(numbers, texts, st.booleans(), st.none())
values = st.recursive(
    scalars,
    lambda c: st.one_of(st.lists(c, max_size=6), st.dictionaries(texts, c, max_size=6)),
    max_leaves=20,
)


def _set(document: dict[str, Any], path: str, value: Any) -> None:
    node = document
    *parents, last = path.split(".")
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[last] = value


def _plausible(default: Any) -> st.SearchStrategy[Any]:
    """Values near a key's default: most are valid, so the launched path is walked too."""
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.integers(min_value=max(0, default // 2), max_value=max(1, default * 2))
    if isinstance(default, float):
        return st.floats(min_value=default / 2, max_value=default * 2) if default else st.just(0.0)
    if isinstance(default, tuple):
        return st.just(list(default))
    return st.just(default) if default is not None else values


@st.composite
def hostile_documents(draw: st.DrawFn) -> str:
    document = json.loads(json.dumps(BASE))
    for path in draw(st.lists(st.sampled_from(KEYS), max_size=4, unique=True)):
        if DEFAULTS[path] is None and path.count(".") == 0:
            continue  # a whole optional section (promote) replaced by a scalar is covered below
        hostile = draw(st.sampled_from([False, False, True]))
        _set(document, path, draw(values if hostile else _plausible(DEFAULTS[path])))
    if draw(st.sampled_from([False, True])):
        document["job"]["budget_usd"] = draw(st.one_of(numbers, st.sampled_from([5, 40.0, 1000])))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):  # unknown keys, anywhere
        section = draw(st.sampled_from(["", "job.", "solver.", "model."]))
        unknown = draw(st.text(min_size=1, max_size=12).filter(lambda k: "." not in k))
        _set(document, section + unknown, draw(values))
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    if draw(st.sampled_from([False] * 9 + [True])):  # sometimes not even YAML
        text = draw(st.text(max_size=200))
    return text


def _alerts_of(recovery: Recovery, run_id: str) -> list[dict[str, Any]]:
    return [
        m for m in recovery.account.inbox.messages() if m["MessageAttributes"]["run_id"]["Value"] == run_id
    ]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(hostile_documents())
def test_a_hostile_config_is_rejected_with_one_bounded_alert_or_launched_and_tracked(
    recovery: Recovery, text: str
) -> None:
    key = f"configs/hostile-{next(_counter)}.yaml"
    data = text.encode()
    put = recovery.account.s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    event = s3_object_created(
        BUCKET, key, etag=put["ETag"].strip('"'), size=len(data), version_id=put["VersionId"]
    )

    outcome = recovery.launcher.launch_from_object(parse_object_created(event))  # never raises

    assert outcome.run_id is not None
    run = recovery.ledger.get_run(outcome.run_id)
    assert run is not None
    name = f"spotline-{outcome.run_id}-a01"
    jobs = set(recovery.job_names())
    if outcome.action == "rejected":
        assert name not in jobs
        assert run.status in (RunStatus.REJECTED, RunStatus.FAILED)
        [alert] = _alerts_of(recovery, outcome.run_id)
        size = len(alert["Message"].encode()) + len(alert.get("Subject", "").encode())
        assert size <= MAX_MESSAGE_BYTES
        if run.status == RunStatus.REJECTED:
            report = recovery.account.s3.get_object(Bucket=BUCKET, Key=layout.run_rejection_key(run.run_id))
            assert json.loads(report["Body"].read())["errors"]
        return

    assert outcome.action == "launched", outcome
    assert name in jobs and run.status == RunStatus.RUNNING and run.launch_recorded
    [attempt] = recovery.ledger.attempts(run.run_id)
    assert attempt.status == "IN_PROGRESS"
    # Interrupted: relaunched, or settled with an alert when a cap stops the ladder.
    [ended] = recovery.end(name, "Stopped", "Interrupted", training_s=120, billable_s=40)
    assert ended.action in ("retrying", "failed"), ended
    settled = recovery.ledger.get_run(run.run_id)
    assert settled is not None and settled.status in (RunStatus.RETRYING, RunStatus.FAILED)
    assert len(_alerts_of(recovery, run.run_id)) == 1
    recovery.queued_relaunches()  # drained for the next example
    assert math.isfinite(settled.policy.retry_backoff_s if settled.policy else 0)
