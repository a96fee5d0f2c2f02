"""`spotline validate` on a config of an image of your own: the example's, and the guide's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from spotline_local.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def _guide_config(tmp_path: Path) -> Path:
    guide = (ROOT / "docs" / "bring-your-own-container.md").read_text()
    [block] = re.findall(r"```yaml\n(job:\n  image: .*?)```", guide, flags=re.S)
    path = tmp_path / "rail-legacy.yaml"
    path.write_text(block)
    return path


@pytest.mark.parametrize(
    ("config", "image"),
    [
        (lambda tmp: ROOT / "examples" / "numpy_trainer" / "rail-geometry.yaml", "rail-geometry:1.0"),
        (_guide_config, "rail-legacy:4.2"),
    ],
)
def test_a_config_of_your_own_image_validates_and_says_which_image_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config: object, image: str
) -> None:
    path = config(tmp_path)  # type: ignore[operator]
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "image 123456789012.dkr.ecr." in out and image in out
    assert "iterations" not in out  # spotline's solver does not apply to it


def test_a_tuning_section_for_an_image_of_your_own_is_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "rail-legacy-tuned.yaml"
    config.write_text(
        "job:\n"
        "  image: 123456789012.dkr.ecr.eu-west-3.amazonaws.com/rail-legacy:4.2\n"
        '  metrics: {acc: "acc=([0-9.]+)"}\n'
        "  channels: {train: datasets/rail/train/}\n"
        "tuning:\n"
        "  objective: {metric: acc, goal: maximize}\n"
        "  max_trials: 2\n"
        "  parallel_trials: 1\n"
        "  ranges: {lr: {min: 0.001, max: 0.1}}\n"
    )
    assert main(["validate", str(config)]) == 1
    out = capsys.readouterr().out
    assert "1 problem" in out and "- tuning: got" in out
    assert "tuning an image of your own is not supported yet" in out
