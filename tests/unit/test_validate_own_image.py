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
