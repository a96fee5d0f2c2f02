"""The config schema: durations, every error reported with its key path, overrides by dotted key."""

from __future__ import annotations

import pytest

from spotline.config import ConfigError, ValidationContext, apply_overrides, parse_run_config
from spotline.config.durations import DurationError, format_duration, parse_duration

MINIMAL = "job:\n  channels: {train: datasets/rail/train/}\n"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90m", 5400),
        ("10h", 36000),
        ("1h30m", 5400),
        ("45s", 45),
        ("2d", 172800),
        (600, 600),
        ("1H 5M", 3900),
    ],
)
def test_durations_read_like_people_write_them(text: object, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["-5m", "0s", 0, -3, "ten hours", "5", "5x", True, 1.5, None, ""])
def test_bad_durations_are_refused(bad: object) -> None:
    with pytest.raises(DurationError):
        parse_duration(bad)


def test_durations_print_short() -> None:
    assert [format_duration(s) for s in (36000, 5400, 45, 90061)] == ["10h", "1h30m", "45s", "1d1h1m1s"]


def test_minimal_config_takes_every_default() -> None:
    config = parse_run_config(MINIMAL)
    assert config.job.spot is True
    assert config.job.effective_max_wait == 2 * int(config.job.max_runtime)
    assert config.job.instance_ladder == ("ml.g4dn.xlarge",)
    assert config.promote is None


def test_spot_off_has_no_max_wait() -> None:
    config = parse_run_config("job:\n  spot: false\n  channels: {train: datasets/x/}\n")
    assert config.job.effective_max_wait is None


def test_max_wait_without_spot_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_run_config("job:\n  spot: false\n  max_wait: 2h\n  channels: {train: datasets/x/}\n")
    assert [i.path for i in caught.value.issues] == ["job.max_wait"]


def test_errors_name_key_value_and_expectation() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_run_config("job:\n  instance_type: g4dn.xlarge\n  channels: {train: datasets/x/}\n")
    (issue,) = caught.value.issues
    assert issue.path == "job.instance_type"
    assert issue.value == "g4dn.xlarge"
    assert (
        str(issue)
        == "job.instance_type: got 'g4dn.xlarge' — expected a SageMaker instance type such as ml.g4dn.xlarge"
    )


def test_all_errors_of_all_sections_come_together() -> None:
    text = "job:\n  spot: maybe\n  channels: {train: datasets/x/}\nsolver:\n  base_lr: fast\nmodle: {}\n"
    with pytest.raises(ConfigError) as caught:
        parse_run_config(text)
    paths = {i.path for i in caught.value.issues}
    assert {"job.spot", "solver.base_lr", "modle"} <= paths


def test_instance_ladder_keeps_order_and_drops_repeats() -> None:
    config = parse_run_config(
        "job:\n  fallback_instance_types: [ml.g5.xlarge, ml.g4dn.xlarge, ml.p3.2xlarge]\n"
        "  channels: {train: datasets/x/}\n"
    )
    assert config.job.instance_ladder == ("ml.g4dn.xlarge", "ml.g5.xlarge", "ml.p3.2xlarge")


def test_overrides_set_dotted_keys_with_yaml_types() -> None:
    document = {"job": {"channels": {"train": "datasets/x/"}}, "solver": {"base_lr": 0.1}}
    merged = apply_overrides(document, {"solver.base_lr": "0.02", "job.spot": "false", "model.width": "16"})
    assert merged["solver"]["base_lr"] == 0.02
    assert merged["job"]["spot"] is False
    assert merged["model"]["width"] == 16
    assert document["solver"]["base_lr"] == 0.1  # the original is untouched


def test_overrides_are_validated_like_the_file() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_run_config(MINIMAL, overrides={"solver.base_lr": "fast"})
    assert [i.path for i in caught.value.issues] == ["solver.base_lr"]


def test_data_from_other_buckets_only_when_allowed() -> None:
    text = "job:\n  channels: {train: s3://shared-datasets/rail/}\n"
    with pytest.raises(ConfigError):
        parse_run_config(text, ValidationContext(drop_bucket="drop"))
    allowed = ValidationContext(drop_bucket="drop", extra_data_buckets=frozenset({"shared-datasets"}))
    assert parse_run_config(text, allowed).job.channels["train"] == "s3://shared-datasets/rail/"


def test_drop_bucket_data_must_live_under_datasets() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_run_config("job:\n  channels: {train: configs/}\n", ValidationContext(drop_bucket="drop"))
    assert "datasets/" in str(caught.value)


def test_deep_nesting_is_refused() -> None:
    text = "job:\n  channels: {train: datasets/x/}\nx: " + "[" * 40 + "]" * 40 + "\n"
    with pytest.raises(ConfigError) as caught:
        parse_run_config(text)
    assert "nesting depth" in str(caught.value)
