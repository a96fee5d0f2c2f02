"""Trials of one tuning job share the definition's checkpoint location: each keeps its own folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from spotline.config.tuning import TRIAL_CHECKPOINTS_ENV
from spotline_container.env import SageMakerEnvironment
from spotline_toolkit.paths import CHECKPOINT_ENV


def _checkpoints(tmp_path: Path, job_name: str, *, trial: bool = True) -> Path:
    environ = {
        "SAGEMAKER_BASE_DIR": str(tmp_path),
        CHECKPOINT_ENV: str(tmp_path / "checkpoints"),
        "TRAINING_JOB_NAME": job_name,
    }
    if trial:
        environ[TRIAL_CHECKPOINTS_ENV] = "1"
    return SageMakerEnvironment.from_env(environ).checkpoint_dir


def test_two_trials_never_share_checkpoints_and_a_restarted_trial_finds_its_own(tmp_path: Path) -> None:
    first = _checkpoints(tmp_path, "spotline-t-1a2b3c4d5e6f-001-0a1b2c3d")
    second = _checkpoints(tmp_path, "spotline-t-1a2b3c4d5e6f-002-9f8e7d6c")
    assert first != second
    assert first.parent == second.parent == tmp_path / "checkpoints"
    # Managed Spot restarts a trial under the same job name: the same folder, its own checkpoints.
    assert _checkpoints(tmp_path, "spotline-t-1a2b3c4d5e6f-001-0a1b2c3d") == first


def test_a_training_job_keeps_the_checkpoint_location_as_it_is(tmp_path: Path) -> None:
    assert _checkpoints(tmp_path, "spotline-run-a1", trial=False) == tmp_path / "checkpoints"


@pytest.mark.parametrize("name", ["../escape", "a/b", "", "-leading", "x" * 64])
def test_a_trial_name_that_is_no_job_name_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not a SageMaker job name"):
        _checkpoints(tmp_path, name)


def test_a_trials_model_keeps_its_tuned_config_without_the_search(tmp_path: Path) -> None:
    """Inference reads the model's own config.yaml: a trial's must be a config inference accepts."""
    import yaml

    from spotline_container.model import CenterNet
    from spotline_container.train import CONFIG_FILE, save_model

    model = CenterNet(num_classes=2, depth=1, width=8, head_width=16)
    document = {
        "solver": {"base_lr": 0.0021},
        "tuning": {"objective": {"metric": "train/loss", "goal": "minimize"}, "ranges": {}},
    }
    save_model(tmp_path, model, ("crack", "squat"), document, {"iteration": 1.0})
    saved = yaml.safe_load((tmp_path / CONFIG_FILE).read_text())
    assert saved == {"solver": {"base_lr": 0.0021}}
    assert "tuning" in document  # what the trial itself runs with is left as it was
