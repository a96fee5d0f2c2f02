"""The container's config sections and the resumable data order, without training."""

from __future__ import annotations

import pytest

from spotline.config import ConfigError, parse_run_config
from spotline_container.data import ResumableBatchSampler

JOB_ONLY = "job: {channels: {train: datasets/rail/train}}\n"


def test_job_alone_is_a_complete_config() -> None:
    config = parse_run_config(JOB_ONLY)
    assert config.mode == "train"
    assert config.input.size == 512
    assert config.solver.amp == "none"
    assert config.checkpoint.keep == 3


def test_hyperparameters_override_by_dotted_path() -> None:
    config = parse_run_config(
        JOB_ONLY, overrides={"solver.base_lr": "0.02", "solver.steps": "[100, 200]", "mode": "inference"}
    )
    assert config.solver.base_lr == 0.02
    assert config.solver.steps == (100, 200)
    assert config.mode == "inference"


@pytest.mark.parametrize(
    ("override", "path"),
    [
        ({"input.size": "100"}, "input.size"),
        ({"solver.steps": "[300, 200]"}, "solver.steps"),
        ({"solver.amp": "fp8"}, "solver.amp"),
        ({"augment.scale": "[1.5, 0.5]"}, "augment.scale"),
        ({"model.classes": "[a, a]"}, "model.classes"),
    ],
)
def test_container_sections_reject_bad_values(override: dict[str, str], path: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_run_config(JOB_ONLY, overrides=override)
    assert [i.path for i in e.value.issues] == [path]


def _batches(start: int, rank: int = 0, world: int = 1) -> list[list[tuple[int, int]]]:
    return list(ResumableBatchSampler(10, 4, rank=rank, world=world, seed=3, start_iter=start, max_iter=8))


def test_sampler_resumes_with_the_same_batches() -> None:
    full = _batches(0)
    assert _batches(5) == full[5:]
    positions = [p for batch in full for _, p in batch]
    assert positions == list(range(32))
    first_epoch = sorted(i for batch in full for i, p in batch if p < 10)
    assert first_epoch == list(range(10))  # every image once per epoch


def test_sampler_splits_each_global_batch_over_ranks() -> None:
    full = _batches(0)
    for rank0, rank1, whole in zip(_batches(0, 0, 2), _batches(0, 1, 2), full, strict=True):
        assert rank0 + rank1 == whole
