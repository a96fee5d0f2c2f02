"""Override values (SageMaker hyperparameters) are read with the same YAML limits as a config file."""

from __future__ import annotations

import pytest

from spotline.config import ConfigError, apply_overrides, parse_run_config
from spotline.config.loader import MAX_ALIASES, MAX_DEPTH, MAX_OVERRIDE_BYTES

MINIMAL = "job:\n  channels: {train: datasets/x/}\n"


def _alias_bomb(levels: int = 9, width: int = 10) -> str:
    """A short text that expands to width**levels values when walked (shared nodes, no copies)."""
    rows = ["&l0 [" + ", ".join(["x"] * width) + "]"]
    rows += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "[" + ", ".join(rows) + "]"


def test_an_alias_bomb_in_an_override_is_refused_with_its_key() -> None:
    bomb = _alias_bomb()
    assert len(bomb) < 2500  # fits in one SageMaker hyperparameter value
    with pytest.raises(ConfigError) as caught:
        apply_overrides({"job": {}}, {"model.classes": bomb})
    [issue] = caught.value.issues
    assert issue.path == "model.classes"
    assert f"more than {MAX_ALIASES} aliases" in str(issue.value)


def test_an_alias_bomb_cannot_reach_validation() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_run_config(MINIMAL, overrides={"model.classes": _alias_bomb()})
    assert [i.path for i in caught.value.issues] == ["model.classes"]


def test_an_oversized_override_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        apply_overrides({}, {"solver.note": "x" * (MAX_OVERRIDE_BYTES + 1)})
    assert caught.value.issues[0].path == "solver.note"
    assert f"at most {MAX_OVERRIDE_BYTES} bytes" in str(caught.value)


def test_a_deeply_nested_override_is_refused() -> None:
    depth = MAX_DEPTH + 5
    with pytest.raises(ConfigError) as caught:
        apply_overrides({}, {"solver.steps": "[" * depth + "]" * depth})
    assert "nesting depth" in str(caught.value)


def test_plain_overrides_keep_their_yaml_types_and_non_yaml_text_stays_text() -> None:
    merged = apply_overrides(
        {}, {"solver.base_lr": "0.02", "job.spot": "false", "model.name": "a: b: c", "model.empty": ""}
    )
    assert merged["solver"]["base_lr"] == 0.02
    assert merged["job"]["spot"] is False
    assert merged["model"]["name"] == "a: b: c"  # not YAML: kept as text, as before
    assert merged["model"]["empty"] is None
