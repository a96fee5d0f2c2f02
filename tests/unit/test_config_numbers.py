"""Numbers in a config: what cannot be stored or compared is refused by its key, as the ledger would.

NaN passes every ``<`` and ``>`` bound, infinity and 1e300 cannot be stored in DynamoDB, and a
value the ledger refuses after CreateTrainingJob leaves a paid job untracked: the schema refuses
all of them first, with the rule the ledger applies (:mod:`spotline.config.numbers`).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Union

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spotline.config import ConfigError, RunConfig, parse_run_config
from spotline.config.numbers import number_problem
from spotline.ledger.table import UnstorableValue, check_storable

MINIMAL = "job:\n  channels: {train: datasets/rail/train/}\n"
UNSTORABLE = [".nan", ".inf", "-.inf", "1.0e+300", "1e300", "1.0e-300", "-1e-200", "1" * 39]
FLOAT_STORABLE = {"1" * 39}  # a whole number of 39 digits read by a float key is the float 1.1e38


def _numeric_keys(cls: type[Any] = RunConfig, prefix: str = "") -> list[tuple[str, type]]:
    """Every key of the schema that takes a number (int or float), with its type."""
    keys: list[tuple[str, type]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if typing.get_origin(hint) in (Union, types.UnionType):
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        if typing.get_origin(hint) in (tuple, list):
            hint = typing.get_args(hint)[0]
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hint):
            keys += _numeric_keys(typing.cast(type[Any], hint), f"{path}.")
        elif hint in (int, float):  # Duration is an int subclass: its own parser refuses numbers
            keys.append((path, hint))
    return keys


def _config_with(path: str, text: str) -> str:
    section, _, key = path.rpartition(".")
    if section == "job":
        return MINIMAL + f"  {key}: {text}\n"
    if path.endswith(("scale", "steps")):
        text = f"[{text}, {text}]"
    return MINIMAL + f"{section}: {{{key}: {text}}}\n"


NUMERIC_KEYS = _numeric_keys()


def test_the_schema_has_the_numeric_keys_the_issue_names() -> None:
    paths = {p for p, _ in NUMERIC_KEYS}
    assert {"job.budget_usd", "promote.min", "solver.base_lr", "checkpoint.period_minutes"} <= paths
    assert len(paths) >= 30


@pytest.mark.parametrize(("path", "kind"), NUMERIC_KEYS, ids=[p for p, _ in NUMERIC_KEYS])
@pytest.mark.parametrize("text", UNSTORABLE)
def test_every_numeric_key_refuses_what_cannot_be_stored_or_compared(
    path: str, kind: type, text: str
) -> None:
    document = _config_with(path, text)
    if kind is float and text in FLOAT_STORABLE:
        try:
            config = parse_run_config(document)
        except ConfigError:
            return  # over the key's bounds
        value: Any = config
        for part in path.split("."):
            value = getattr(value, part)
        check_storable(value, path)  # else a float the ledger stores
        return
    with pytest.raises(ConfigError) as caught:
        parse_run_config(document)
    paths = [i.path for i in caught.value.issues]
    assert any(p == path or p.startswith(f"{path}[") for p in paths), (path, text, paths)


def test_nan_is_refused_where_it_passed_every_bound_before() -> None:
    for document, key in (
        (MINIMAL + "solver: {base_lr: .nan}\n", "solver.base_lr"),
        (MINIMAL + "checkpoint: {period_minutes: .nan}\n", "checkpoint.period_minutes"),
        (MINIMAL + "promote: {min: .nan}\n", "promote.min"),
        (MINIMAL + "  budget_usd: .nan\n", "job.budget_usd"),
    ):
        with pytest.raises(ConfigError) as caught:
            parse_run_config(document)
        ((issue,),) = [caught.value.issues]
        assert issue.path == key
        assert "finite" in issue.expected


def test_exponent_numbers_are_numbers() -> None:
    """``1e-5`` is text in YAML 1.1 but a number everywhere else: a float key takes it."""
    config = parse_run_config(MINIMAL + "solver: {base_lr: 1e-5, weight_decay: 2E-4}\n")
    assert config.solver.base_lr == 1e-5
    assert config.solver.weight_decay == 2e-4
    with pytest.raises(ConfigError):
        parse_run_config(MINIMAL + "solver: {base_lr: 1e-5x}\n")


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**45), max_value=10**45),
    st.sampled_from([1e-130, 9.99e-131, 1e126, 9.99e125, 10**38 - 1, 10**38 + 1, -0.0]),
)


@given(numbers)
def test_the_schema_and_the_ledger_agree_on_every_number(value: float | int) -> None:
    """What the schema lets through for ``job.budget_usd`` the ledger can store, and vice versa."""
    try:
        check_storable(value, "budget")
        storable = True
    except UnstorableValue:
        storable = False
    assert storable == (number_problem(value) is None)
    if isinstance(value, float) and math.isnan(value):
        text = ".nan"
    elif isinstance(value, float) and math.isinf(value):
        text = ".inf" if value > 0 else "-.inf"
    else:
        text = repr(value)
    try:
        config = parse_run_config(MINIMAL + f"  budget_usd: {text}\n")
    except ConfigError:
        return
    assert config.job.budget_usd is not None
    check_storable(config.job.budget_usd, "budget")  # never refused after the launch
