"""Deterministic names and tolerant event parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from spotline.domain.events import (
    EventShapeError,
    decode_event_key,
    parse_object_created,
    parse_tags,
    parse_timestamp,
    parse_training_job_state_change,
)
from spotline.domain.layout import UnsafeKey, check_user_key
from spotline.domain.naming import JOB_NAME, job_name, parse_job_name, run_id_for_object, slugify
from tests.support.events import load_event


def test_run_id_is_deterministic_and_readable() -> None:
    a = run_id_for_object("b", "configs/Rail v2.yaml", "v1")
    assert a == run_id_for_object("b", "configs/Rail v2.yaml", "v1")
    assert a != run_id_for_object("b", "configs/Rail v2.yaml", "v2")
    assert a.startswith("rail-v2-")


@pytest.mark.parametrize(
    "key", ["configs/x.yaml", "configs/" + "é" * 300 + ".yaml", "configs/---.yaml", "configs/日本語.yml"]
)
def test_job_names_always_fit_sagemaker(key: str) -> None:
    run_id = run_id_for_object("bucket", key, "etag")
    for attempt in (1, 2, 99):
        name = job_name("spotline", run_id, attempt)
        assert len(name) <= 63
        assert JOB_NAME.fullmatch(name)
        assert parse_job_name("spotline", name) == (run_id, attempt)


def test_other_teams_jobs_are_not_ours() -> None:
    assert parse_job_name("spotline", "pytorch-training-2026-11-27-08-00-00-123") is None
    assert parse_job_name("spotline", "spotline-x") is None


def test_slugify() -> None:
    assert slugify("Voie 2 – défauts") == "voie-2-defauts"
    assert slugify("日本語") == "run"


@pytest.mark.parametrize(
    "key",
    [
        "configs/../secrets.yaml",
        "configs//x.yaml",
        "configs/./x.yaml",
        "configs/a\nb.yaml",
        "datasets/x.yaml",
    ],
)
def test_unsafe_keys_are_refused(key: str) -> None:
    with pytest.raises(UnsafeKey):
        check_user_key(key, "configs/")


def test_event_keys_are_decoded_as_s3_encodes_them() -> None:
    assert decode_event_key("configs/red+flower%2B1.yaml") == "configs/red flower+1.yaml"
    assert decode_event_key("configs/déjà vu.yaml") == "configs/déjà vu.yaml"  # already raw


def test_object_created_sample() -> None:
    obj = parse_object_created(load_event("s3_config_created"))
    assert (obj.bucket, obj.key, obj.version_id) == (
        "spotline-drop-123456789012",
        "configs/rail-detector.yaml",
        "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
    )
    assert (obj.etag, obj.size) == ("b1946ac92492d2347c6235b4d2611184", 1024)


def test_object_created_without_object_is_a_shape_error() -> None:
    with pytest.raises(EventShapeError):
        parse_object_created({"detail": {"bucket": {"name": "b"}}})


@pytest.mark.parametrize(
    "value",
    [
        1795737600000,
        1795737600000.0,
        "1795737600000",
        1795737600,
        "2026-11-27T00:00:00Z",
        "2026-11-27T00:00:00+00:00",
    ],
)
def test_timestamps_in_every_shape(value: object) -> None:
    assert parse_timestamp(value) == datetime(2026, 11, 27, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [({}, {}), (None, {}), ([{"Key": "a", "Value": "1"}], {"a": "1"}), ({"a": "1"}, {"a": "1"})],
)
def test_tags_in_every_shape(value: object, expected: dict[str, str]) -> None:
    assert parse_tags(value) == expected


def test_state_change_minimal() -> None:
    change = parse_training_job_state_change(
        {
            "detail": {
                "TrainingJobName": "spotline-x-0123456789ab-a01",
                "TrainingJobStatus": "Failed",
                "Tags": {},
            }
        }
    )
    assert (change.status, change.secondary_status, change.tags) == ("Failed", "", {})


def test_an_unreadable_object_size_is_a_shape_error_not_a_crash() -> None:
    event = load_event("s3_config_created")
    event["detail"]["object"]["size"] = "lots"
    with pytest.raises(EventShapeError):
        parse_object_created(event)
