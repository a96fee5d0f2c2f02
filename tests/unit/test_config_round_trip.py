"""What spotline hands the container comes back as it was; YAML that could mean two things is refused.

SageMaker hyperparameters are strings: every value spotline passes is written with
``dump_yaml_value`` and read by the container with ``load_yaml_value`` / ``apply_overrides`` —
``0.00001`` must not become the text ``1e-05`` that the container's schema refuses.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spotline.config import ConfigError, ValidationContext, apply_overrides, parse_run_config
from spotline.config.loader import dump_yaml_value, load_yaml_document, load_yaml_value
from spotline.config.model import InferenceSection
from spotline.config.schema import build

MINIMAL = "job:\n  channels: {train: datasets/rail/train/}\n"

scalars = st.one_of(
    st.floats(allow_nan=False),
    st.floats(min_value=-1e-3, max_value=1e-3),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.booleans(),
    st.none(),
    st.text(max_size=40),
    st.sampled_from(["true", "no", "null", "1e-05", "0.5", "~", "", " x ", "a: b", "#c", "- d", "[e]", "'f"]),
    st.sampled_from(["x\ny", "\x85", "\u2028", "a\r\nb", "\t", "d\u00e9faut", "\U0001f600"]),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(min_size=1, max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@given(values)
def test_every_value_survives_the_hyperparameter_round_trip(value: Any) -> None:
    text = dump_yaml_value(value)
    assert "\n" not in text  # one line, whatever the value holds
    assert _same(load_yaml_value(text), value), (value, text)
    merged = apply_overrides({"inference": {}}, {"inference.x": text})
    assert _same(merged["inference"]["x"], value)


@pytest.mark.parametrize("value", [0.00001, 1e-7, 3e-9, 1e20, float("inf"), float("-inf")])
def test_small_and_large_floats_are_numbers_again(value: float) -> None:
    text = dump_yaml_value(value)
    assert load_yaml_value(text) == value
    assert text != str(value) or "e" not in text  # str(1e-05) is '1e-05', text in YAML 1.1


@given(
    st.floats(min_value=0.0, max_value=1.0).filter(lambda x: x == 0 or x >= 1e-130),  # storable
    st.integers(min_value=1, max_value=4096),
    st.sampled_from(["none", "bf16", "fp16"]),
)
def test_job_file_inference_settings_reach_the_container_as_they_were(
    threshold: float, batch_size: int, amp: str
) -> None:
    """A _job.yaml's inference section, passed as hyperparameters, is what the container runs with."""
    job_file = {"score_threshold": threshold, "batch_size": batch_size, "amp": amp}
    build(InferenceSection, job_file, "inference")  # what the model resolver checks
    hyperparameters = {f"inference.{k}": dump_yaml_value(v) for k, v in job_file.items()}
    config = parse_run_config(MINIMAL, overrides={"mode": "inference", **hyperparameters})
    assert config.inference.score_threshold == threshold
    assert (config.inference.batch_size, config.inference.amp) == (batch_size, amp)


# -------------------------------------------------------------------------------- duplicate keys


@pytest.mark.parametrize(
    "text",
    [
        "job:\n  channels: {train: datasets/a/}\n  spot: true\n  spot: false\n",
        "job:\n  channels: {train: datasets/a/, train: datasets/b/}\n",
        "job:\n  channels: {train: datasets/a/}\njob:\n  channels: {train: datasets/b/}\n",
        "job:\n  channels: {train: datasets/a/}\nsolver:\n  base_lr: 0.1\n  base_lr: 0.2\n",
        "job:\n  channels: {train: datasets/a/}\n1: a\n1: b\n",
    ],
)
def test_a_key_twice_in_a_mapping_is_an_error_not_last_wins(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_run_config(text)
    (issue,) = caught.value.issues
    assert "duplicate key" in str(issue.value) and "line" in str(issue.value)


def test_a_merge_key_may_be_overridden_key_by_key() -> None:
    text = (
        "base: &base {batch_size: 8, base_lr: 0.01}\n"
        "job:\n  channels: {train: datasets/a/}\n"
        "solver:\n  <<: *base\n  base_lr: 0.02\n"
    )
    document = load_yaml_document(text)
    assert document["solver"] == {"batch_size": 8, "base_lr": 0.02}


def test_duplicate_keys_in_an_override_or_a_job_file_are_errors_too() -> None:
    with pytest.raises(ConfigError):
        load_yaml_value("{a: 1, a: 2}")
    with pytest.raises(ConfigError):
        load_yaml_document("model: a\nmodel: b\n")


# -------------------------------------------------------------------------------- launch-only rules


def test_an_inference_config_dropped_under_configs_is_refused_at_launch() -> None:
    launching = ValidationContext(dropped_config=True)
    with pytest.raises(ConfigError) as caught:
        parse_run_config(MINIMAL + "mode: inference\n", launching)
    ((issue,),) = [caught.value.issues]
    assert issue.path == "mode" and "inference/<batch>/" in issue.expected
    # the container reads the same file in inference mode (the model's own config): no refusal there
    assert parse_run_config(MINIMAL + "mode: inference\n").mode == "inference"
    assert parse_run_config(MINIMAL, launching).mode == "train"
