"""The failure contract: a user's mistake is told apart from a platform fault, with a non-zero exit."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spotline_container.sagemaker_tree import make_tree
from tests.container.conftest import run_container, tiny_config


def test_bad_hyperparameter_is_a_user_error(tmp_path: Path, channels: dict[str, Path]) -> None:
    base = make_tree(
        tmp_path, config_yaml=tiny_config(), hyperparameters={"solver.base_lr": "fast"}, channels=channels
    )
    run = run_container(base)
    assert run.returncode == 1
    assert run.failure is not None
    assert run.failure.startswith("UserError: invalid config: solver.base_lr")
    assert not (base / "model" / "model.pt").exists()


def test_unknown_config_key_is_a_user_error(tmp_path: Path, channels: dict[str, Path]) -> None:
    base = make_tree(
        tmp_path, config_yaml=tiny_config(), hyperparameters={"solver.base_lrr": "0.1"}, channels=channels
    )
    run = run_container(base)
    assert run.returncode == 1
    assert run.failure is not None
    assert run.failure.startswith("UserError:")
    assert "did you mean 'base_lr'" in run.failure


def test_missing_train_channel_is_a_user_error(tmp_path: Path, channels: dict[str, Path]) -> None:
    base = make_tree(tmp_path, config_yaml=tiny_config(), channels={"val": channels["val"]})
    run = run_container(base)
    assert run.returncode == 1
    assert run.failure == "UserError: missing channel 'train' (COCO annotations.json + images)"


def test_missing_config_channel_is_a_user_error(tmp_path: Path, channels: dict[str, Path]) -> None:
    run = run_container(make_tree(tmp_path, channels=channels))
    assert run.returncode == 1
    assert run.failure is not None
    assert run.failure.startswith("UserError: missing channel 'config'")


def test_broken_annotations_are_a_user_error(tmp_path: Path, channels: dict[str, Path]) -> None:
    base = make_tree(tmp_path, config_yaml=tiny_config(), channels=channels)
    (base / "input" / "data" / "train" / "annotations.json").write_text("{not json")
    run = run_container(base)
    assert run.returncode == 1
    assert run.failure is not None
    assert run.failure.startswith("UserError:")
    assert "annotations.json" in run.failure


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda coco: coco["images"][0].update(width=0), "has width 0 and height 64; both must be > 0"),
        (lambda coco: coco.update(images="images/"), "expected a COCO object with 'images'"),
        (lambda coco: coco.update(annotations=[[1, 2, 3, 4]]), "'annotations' must be a list of objects"),
        (
            lambda coco: coco["annotations"][0].update(bbox=[1, 2, "nan", 4]),
            "needs image_id, category_id, bbox",
        ),
        (lambda coco: coco.update(categories={"1": "rail_crack"}), "'categories' must be a list of objects"),
    ],
    ids=["width-0", "images-not-a-list", "annotation-not-an-object", "nan-bbox", "categories-a-mapping"],
)
def test_odd_annotations_are_a_user_error_naming_the_file(
    tmp_path: Path, channels: dict[str, Path], change: Callable[[dict[str, Any]], object], why: str
) -> None:
    base = make_tree(tmp_path, config_yaml=tiny_config(), channels=channels)
    path = base / "input" / "data" / "train" / "annotations.json"
    coco = json.loads(path.read_text())
    change(coco)
    path.write_text(json.dumps(coco))
    run = run_container(base)
    assert run.returncode == 1
    assert run.failure is not None
    assert run.failure.startswith("UserError: "), run.failure
    assert "train/annotations.json: " in run.failure and why in run.failure


def test_unreadable_platform_files_are_a_platform_error(tmp_path: Path, channels: dict[str, Path]) -> None:
    base = make_tree(tmp_path, config_yaml=tiny_config(), channels=channels)
    (base / "input" / "config" / "resourceconfig.json").write_text("{")
    run = run_container(base)
    assert run.returncode == 1
    assert run.failure is not None
    assert run.failure.startswith("PlatformError:")
