"""A config refused before launch for what its run could never do: read a channel, measure a gate."""

from __future__ import annotations

import pytest

from spotline.config import ConfigError, parse_run_config


def issues_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_run_config(text)
    return [str(i) for i in e.value.issues]


def test_a_channel_spotlines_image_does_not_read_is_an_error_with_a_did_you_mean() -> None:
    [issue] = issues_of("job:\n  channels: {train: datasets/t/, vall: datasets/v/}\n")
    assert issue.startswith("job.channels.vall: got 'vall' — spotline's image does not read this channel")
    assert "did you mean 'val'?" in issue and "(it reads train, val)" in issue


def test_a_gate_on_a_validation_metric_needs_a_val_channel() -> None:
    [issue] = issues_of("job:\n  channels: {train: datasets/t/}\npromote: {metric: val/mAP50, min: 0.5}\n")
    assert issue.startswith("promote.metric: got 'val/mAP50' — the run cannot report it")
    parse_run_config(
        "job:\n  channels: {train: datasets/t/, val: datasets/v/}\npromote: {metric: val/mAP50, min: 0.5}\n"
    )


def test_every_problem_is_reported_at_once() -> None:
    found = issues_of(
        "job:\n  instance_type: ml.t2.nano\n  max_wiat: 5h\n"
        "  channels: {train: datasets/t/, vall: datasets/v/}\n"
        "promote: {metric: val/mAP50, min: 0.5}\n"
    )
    assert [i.split(":")[0] for i in found] == [
        "job.max_wiat",
        "job.instance_type",
        "job.channels.vall",
        "promote.metric",
    ]
