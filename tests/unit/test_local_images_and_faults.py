"""The local stack's images file (image URI -> local command) and its faults for any image."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from spotline_local.faults import Fault, FaultsError, parse_faults
from spotline_local.images import ImagesError, LocalImages, load_images, parse_images

ROOT = Path(__file__).resolve().parents[2]
OWN = "123456789012.dkr.ecr.us-east-1.amazonaws.com/spotline:local"
GEOMETRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com/rail-geometry:1.0"


def test_the_example_images_file_maps_its_image_to_its_script() -> None:
    images = load_images(ROOT / "examples" / "numpy_trainer" / "local-images.yaml")
    command = images.command_for(GEOMETRY, OWN)
    assert command is not None
    assert command.argv == (sys.executable, str(ROOT / "examples" / "numpy_trainer" / "train.py"), "train")
    assert images.allowed_repositories() == ("arn:aws:ecr:us-east-1:123456789012:repository/rail-geometry",)


def test_the_stacks_own_image_runs_spotlines_container(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    own = LocalImages().command_for(OWN, OWN)
    assert own is not None and own.argv == (sys.executable, "-m", "spotline_container", "train")
    assert LocalImages().command_for(GEOMETRY, OWN) is None  # no line, no engine: no local stand-in


def test_an_unmapped_image_runs_under_a_container_engine_where_one_exists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}" if name == "podman" else None)
    command = LocalImages().command_for(GEOMETRY, OWN)
    assert command is not None
    assert command.argv == ("podman", "run", "--rm", "-v", "{base}:/opt/ml", GEOMETRY, "train")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "an 'images' mapping"),
        ({"images": {"rail:1": {"command": ["x"]}}}, "not an ECR image URI"),
        ({"images": {GEOMETRY: {"command": "python train.py"}}}, "non-empty list of strings"),
        ({"images": {GEOMETRY: {"command": []}}}, "non-empty list of strings"),
        (
            {"images": {GEOMETRY: {"command": ["x"], "environment": ["A=1"]}}},
            "environment: expected a mapping",
        ),
    ],
)
def test_a_malformed_images_file_says_what_is_wrong(document: object, message: str) -> None:
    with pytest.raises(ImagesError, match=message):
        parse_images(document, Path("/here"))


def test_images_file_placeholders_and_environment(tmp_path: Path) -> None:
    file = tmp_path / "images.yaml"
    file.write_text(
        f"images:\n  {GEOMETRY}:\n    command: ['{{python}}', '{{here}}/t.py']\n    environment: {{A: 1}}\n"
    )
    command = load_images(file).command_for(GEOMETRY, OWN)
    assert command is not None
    assert command.argv == (sys.executable, f"{tmp_path}/t.py") and command.environment == {"A": "1"}
    with pytest.raises(ImagesError):
        load_images(tmp_path / "absent.yaml")


def test_faults_interrupt_any_image_by_a_line_or_by_time() -> None:
    by_line, by_time = parse_faults(
        {
            "faults": [
                {"job": "*-a01", "kind": "spot_interruption", "at_line": r"valid/accuracy=\S+ step=\d+"},
                {"job": "*-a02", "kind": "spot_interruption", "after_seconds": 2.5, "then": "Interrupted"},
            ]
        }
    )
    assert by_line == Fault(job="*-a01", kind="spot_interruption", at_line=r"valid/accuracy=\S+ step=\d+")
    assert (by_time.after_seconds, by_time.then, by_time.at_line) == (2.5, "Interrupted", None)


@pytest.mark.parametrize(
    "entry", [{"at_line": "step=(("}, {"after_seconds": -1}, {"after_seconds": float("inf")}]
)
def test_a_fault_that_could_never_fire_is_refused(entry: dict[str, object]) -> None:
    with pytest.raises(FaultsError):
        parse_faults([{"kind": "spot_interruption", **entry}])
