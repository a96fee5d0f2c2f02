"""The failure contract: a user's mistake is told apart from a platform fault, with a non-zero exit."""

from __future__ import annotations

from pathlib import Path

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


def test_unreadable_platform_files_are_a_platform_error(tmp_path: Path, channels: dict[str, Path]) -> None:
    base = make_tree(tmp_path, config_yaml=tiny_config(), channels=channels)
    (base / "input" / "config" / "resourceconfig.json").write_text("{")
    run = run_container(base)
    assert run.returncode == 1
    assert run.failure is not None
    assert run.failure.startswith("PlatformError:")
