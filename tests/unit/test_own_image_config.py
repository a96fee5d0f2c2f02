"""A config naming an image of its own: what it may say, what it may not, and the request it makes."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spotline import metric_names
from spotline.config import ConfigError, RunConfig, ValidationContext, parse_run_config, run_metric_names
from spotline.config.images import ALLOWED_IMAGE_PATTERN, image_allowed, repository_arn
from spotline.config.loader import load_yaml_value
from spotline.domain.policy import RunPolicy
from spotline.domain.requests import training_request
from spotline.domain.settings import Settings, SettingsError

LEGACY = "123456789012.dkr.ecr.eu-west-3.amazonaws.com/rail-legacy:4.2"
STACK_IMAGE = "123456789012.dkr.ecr.eu-west-3.amazonaws.com/spotline:1.0.0"
OWN = f"""
job:
  image: {LEGACY}
  metrics:
    val/mAP50: 'mAP@0.5=([0-9.]+)'
  checkpoints: true
  channels: {{train: datasets/rail/train/, images: datasets/rail/images/}}
hyperparameters: {{base_lr: 0.02, cfg: configs/faster_rcnn.yaml, warm: true, tiny: 1e-5, steps: "[3, 4]"}}
environment: {{OMP_NUM_THREADS: "8", SEED: 3}}
promote: {{metric: val/mAP50, min: 0.5}}
"""
SETTINGS = Settings(
    bucket="drop",
    table="ledger",
    topic_arn="arn:aws:sns:eu-west-3:123456789012:alerts",
    image_uri=STACK_IMAGE,
    execution_role_arn="arn:aws:iam::123456789012:role/exec",
    job_prefix="spotline",
)


def _request(config: RunConfig) -> dict[str, Any]:
    return training_request(
        settings=SETTINGS,
        run_id="rail-0123456789ab",
        config=config,
        config_key="runs/r/config.yaml",
        source_key="k",
    )


def _issues(text: str, context: ValidationContext | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_run_config(text, context)
    return {i.path: i.expected for i in caught.value.issues}


def test_an_image_of_your_own_brings_its_metrics_hyperparameters_and_environment() -> None:
    config = parse_run_config(OWN)
    request = _request(config)
    spec = request["AlgorithmSpecification"]
    assert spec["TrainingImage"] == LEGACY
    assert spec["MetricDefinitions"] == [{"Name": "val/mAP50", "Regex": "mAP@0.5=([0-9.]+)"}]
    assert request["HyperParameters"] == {
        "base_lr": "0.02",
        "cfg": "configs/faster_rcnn.yaml",
        "warm": "true",
        "tiny": "1e-5",  # as written (text in YAML 1.1, a number to the image)
        "steps": "[3, 4]",
    }
    assert request["Environment"] == {
        "OMP_NUM_THREADS": "8",
        "SEED": "3",
        "SPOTLINE_RUN_ID": "rail-0123456789ab",
        "SPOTLINE_ATTEMPT": "1",
    }
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["config", "train", "images"]
    assert run_metric_names(config) == ("val/mAP50",)
    assert RunPolicy.from_config(config).resumes is True


def test_spotline_image_is_the_default_with_its_own_metrics() -> None:
    config = parse_run_config("job: {channels: {train: datasets/rail/train/}}\n")
    request = _request(config)
    assert request["AlgorithmSpecification"]["TrainingImage"] == STACK_IMAGE
    assert [d["Name"] for d in request["AlgorithmSpecification"]["MetricDefinitions"]] == list(
        metric_names.ALL
    )
    assert request["HyperParameters"] == {}
    assert run_metric_names(config) == metric_names.ALL
    assert RunPolicy.from_config(config).resumes is True


def test_an_image_without_checkpoints_does_not_resume() -> None:
    config = parse_run_config(OWN.replace("checkpoints: true", "checkpoints: false"))
    assert RunPolicy.from_config(config).resumes is False
    assert RunPolicy.from_config(parse_run_config(OWN.replace("  checkpoints: true\n", ""))).resumes is False


def test_sections_of_spotline_image_do_not_apply_to_your_own() -> None:
    issues = _issues(OWN + "solver: {max_iter: 3}\nmodel: {depth: 2}\nmode: train\n")
    assert set(issues) == {"solver", "model", "mode"}
    assert all("hyperparameters" in why for why in issues.values())


def test_what_describes_an_image_of_your_own_is_refused_for_spotline_image() -> None:
    issues = _issues(
        "job:\n  channels: {train: datasets/x/}\n  metrics: {a: 'a=([0-9]+)'}\n  checkpoints: false\n"
        "hyperparameters: {base_lr: 0.1}\n"
    )
    assert set(issues) == {"job.metrics", "job.checkpoints", "hyperparameters"}  # all at once
    issues = _issues("job:\n  channels: {train: datasets/x/}\nhyperparameters: {base_lr: 0.1}\n")
    assert set(issues) == {"hyperparameters"}
    assert "solver.base_lr" in issues["hyperparameters"]


def test_your_own_image_reads_the_channels_it_declares() -> None:
    config = parse_run_config(
        f"job:\n  image: {LEGACY}\n  channels: {{images: datasets/x/, labels: datasets/y/}}\n"
    )
    assert set(config.job.channels) == {"images", "labels"}
    assert "job.channels.config" in _issues(f"job:\n  image: {LEGACY}\n  channels: {{config: datasets/x/}}\n")
    assert "job.channels" in _issues("job:\n  channels: {images: datasets/x/}\n")  # ours needs train


@pytest.mark.parametrize(
    ("metrics", "why"),
    [
        ("{acc: 'accuracy=[0-9.]+'}", "group"),
        ("{acc: 'accuracy=([0-9.]+'}", "valid regex"),
        ("{acc: ''}", "1 to 500"),
        (f"{{acc: '{'(x)' * 200}'}}", "1 to 500"),
        ("{\"bad\\tname\": '(x)'}", "printable"),
    ],
)
def test_metric_regexes_sagemaker_cannot_use_are_refused(metrics: str, why: str) -> None:
    issues = _issues(f"job:\n  image: {LEGACY}\n  metrics: {metrics}\n  channels: {{d: datasets/x/}}\n")
    ((path, expected),) = issues.items()
    assert path.startswith("job.metrics")
    assert why in expected


def test_at_most_forty_metrics() -> None:
    many = ", ".join(f"m{i}: 'm{i}=([0-9]+)'" for i in range(41))
    assert "job.metrics" in _issues(
        f"job:\n  image: {LEGACY}\n  metrics: {{{many}}}\n  channels: {{d: datasets/x/}}\n"
    )


def test_gates_read_what_the_run_reports() -> None:
    issues = _issues(OWN.replace("metric: val/mAP50", "metric: val/accuracy"))
    assert "promote.metric" in issues and "val/mAP50" in issues["promote.metric"]
    assert "promote.metric" in _issues(
        "job: {channels: {train: datasets/x/}}\npromote: {metric: train/loss, min: 0.1}\n"
    )
    assert "promote.min" in _issues(
        "job: {channels: {train: datasets/x/}}\npromote: {metric: val/mAP, min: 2}\n"
    )
    # An image of your own reports on its own scale.
    assert parse_run_config(OWN.replace("min: 0.5", "min: 87")).promote is not None


def test_environment_names_and_values_sagemaker_takes() -> None:
    issues = _issues(
        "job: {channels: {train: datasets/x/}}\n"
        f"environment: {{'1BAD': x, SPOTLINE_ATTEMPT: '3', LONG: {'x' * 513}, OK: y}}\n"
    )
    assert set(issues) == {"environment.1BAD", "environment.SPOTLINE_ATTEMPT", "environment.LONG"}
    assert "environment.NAN" in _issues("job: {channels: {train: datasets/x/}}\nenvironment: {NAN: .nan}\n")


def test_hyperparameter_values_fit_sagemaker() -> None:
    issues = _issues(
        f"job:\n  image: {LEGACY}\n  channels: {{d: datasets/x/}}\nhyperparameters: {{h: {'x' * 2501}}}\n"
    )
    assert set(issues) == {"hyperparameters.h"}
    assert "hyperparameters.h" in _issues(
        f"job:\n  image: {LEGACY}\n  channels: {{d: datasets/x/}}\nhyperparameters: {{h: {{a: 1}}}}\n"
    )


@given(
    st.one_of(
        st.text(max_size=40),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(min_value=-1e100, max_value=1e100).filter(lambda x: x == 0 or abs(x) > 1e-100),
        st.booleans(),
    )
)
def test_hyperparameters_reach_the_image_as_text_yaml_reads_back(value: object) -> None:
    config = parse_run_config(
        f"job:\n  image: {LEGACY}\n  channels: {{d: datasets/x/}}\n",
        overrides={"hyperparameters.v": _yaml(value)},
    )
    written = training_request(
        settings=SETTINGS,
        run_id="r-0123456789ab",
        config=config,
        config_key="runs/r/config.yaml",
        source_key="k",
    )["HyperParameters"]["v"]
    if isinstance(value, str):
        assert written == value  # text is handed over as it is
    else:
        assert load_yaml_value(written) == value


def _yaml(value: object) -> str:
    from spotline.config.loader import dump_yaml_value

    return dump_yaml_value(value)


ALLOWED = (
    "arn:aws:ecr:eu-west-3:123456789012:repository/rail-*",
    "arn:aws:ecr:*:210987654321:repository/team/*",
)


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        (LEGACY, True),
        ("123456789012.dkr.ecr.eu-west-3.amazonaws.com/rail-legacy@sha256:" + "a" * 64, True),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/rail-legacy:4.2", False),  # other region
        ("123456789012.dkr.ecr.eu-west-3.amazonaws.com/legacy-rail:4.2", False),
        ("999999999999.dkr.ecr.eu-west-3.amazonaws.com/rail-legacy:4.2", False),  # other account
        ("210987654321.dkr.ecr.ap-south-1.amazonaws.com/team/vision/detector:1", True),
        ("210987654321.dkr.ecr.ap-south-1.amazonaws.com/other/detector:1", False),
        ("docker.io/library/rail-legacy:4.2", False),
    ],
)
def test_allowed_images_are_ecr_repository_patterns(image: str, allowed: bool) -> None:
    assert image_allowed(image, ALLOWED) is allowed


def test_a_config_naming_an_image_the_stack_does_not_allow_is_refused_with_the_list() -> None:
    context = ValidationContext(stack_image=STACK_IMAGE, allowed_images=(ALLOWED[1],))
    issues = _issues(OWN, context)
    assert set(issues) == {"job.image"}
    assert ALLOWED[1] in issues["job.image"]
    assert parse_run_config(OWN, ValidationContext(stack_image=STACK_IMAGE, allowed_images=ALLOWED))
    # the stack's own image is always allowed, even named explicitly
    stack_named = f"job:\n  image: {STACK_IMAGE}\n  channels: {{d: datasets/x/}}\n"
    assert parse_run_config(stack_named, ValidationContext(stack_image=STACK_IMAGE, allowed_images=()))
    assert "none" in _issues(OWN, ValidationContext(stack_image=STACK_IMAGE, allowed_images=()))["job.image"]


@given(st.text(alphabet="abcdefghij0123456789-./", min_size=1, max_size=30))
def test_a_repository_pattern_without_wildcard_allows_that_repository_only(name: str) -> None:
    image = f"123456789012.dkr.ecr.eu-west-3.amazonaws.com/{name}:1"
    arn = repository_arn(image)
    if arn is None:
        return
    assert image_allowed(image, [arn])
    assert not image_allowed(image, [arn + "x"])
    assert not image_allowed(f"123456789012.dkr.ecr.eu-west-3.amazonaws.com/{name}x:1", [arn])


def test_settings_read_the_allowed_images_and_refuse_what_is_not_a_pattern() -> None:
    env = {
        "SPOTLINE_BUCKET": "b",
        "SPOTLINE_TABLE": "t",
        "SPOTLINE_TOPIC_ARN": "a",
        "SPOTLINE_IMAGE_URI": STACK_IMAGE,
        "SPOTLINE_EXECUTION_ROLE_ARN": "r",
        "SPOTLINE_JOB_PREFIX": "spotline",
        "SPOTLINE_ALLOWED_IMAGES": f"{ALLOWED[0]}, {ALLOWED[1]}",
    }
    assert Settings.from_env(env).allowed_images == ALLOWED
    with pytest.raises(SettingsError, match="ECR repository ARN"):
        Settings.from_env({**env, "SPOTLINE_ALLOWED_IMAGES": "rail-*"})
    assert all(re.fullmatch(ALLOWED_IMAGE_PATTERN, p) for p in ALLOWED)
    assert not re.fullmatch(
        ALLOWED_IMAGE_PATTERN, "arn:aws:ecr:eu-west-3:*:repository/x"
    )  # no account wildcard
