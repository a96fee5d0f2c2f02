"""A small declarative schema: frozen dataclasses whose fields carry their own rules.

Each config section is a frozen dataclass. A field's type hint says what it accepts
(``str``, ``int``, ``float``, ``bool``, ``Duration``, ``Literal[...]``, ``list[T]``,
``dict[str, T]``, ``T | None`` or another section) and its metadata, built with
:func:`setting`, says what else must hold (bounds, pattern, help text). :func:`build`
turns a plain mapping into the section, collecting *every* problem of the file with its
key path, the bad value and what was expected, instead of stopping at the first.

We keep this instead of a validation library because the launch Lambda imports it on
every cold start, and because the error text is part of the product: it is what a
researcher reads in the rejection alert.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, Union

from spotline.config.durations import DurationError, format_duration, parse_duration
from spotline.config.numbers import STORABLE, number_problem

T = TypeVar("T")
# A number in exponent form without a dot or without an exponent sign (``1e-5``, ``2E10``): a float in
# YAML 1.2 and in every other language, text in YAML 1.1 (which PyYAML follows).
_EXPONENT_NUMBER = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+")


class Duration(int):
    """Seconds, written in the YAML as ``10h``, ``90m``, ``45s``, ``1h30m`` or a plain integer."""

    def __repr__(self) -> str:
        return f"Duration({format_duration(int(self))})"


class Scalar:
    """A field hint: one plain value, text, a number or true/false (kept as it was written).

    What a foreign image is handed (SageMaker hyperparameters and environment values are text;
    :func:`spotline.config.loader.dump_yaml_value` writes the others), and a tuning range's
    categorical choice."""


@dataclass(frozen=True)
class Issue:
    """One problem in a config file: where, what was found, what was expected."""

    path: str
    value: Any
    expected: str

    def __str__(self) -> str:
        shown = _show(self.value)
        where = self.path or "(top level)"
        return f"{where}: got {shown} — {self.expected}"


class ConfigError(ValueError):
    """A config file that must not start a job; carries every issue found."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("; ".join(str(i) for i in issues))


_MISSING = object()


def setting(
    default: Any = _MISSING,
    *,
    help: str,
    min: float | None = None,
    max: float | None = None,
    pattern: str | None = None,
    expect: str | None = None,
    min_items: int | None = None,
    max_items: int | None = None,
    required: bool = False,
    default_factory: Callable[[], Any] | None = None,
    key: str | None = None,
) -> Any:
    """A field with its rules and its help text (the help text documents the reference config).

    ``key``: the YAML key of the field when it cannot be its Python name (``from``).
    """
    meta = {
        "key": key,
        "help": help,
        "min": min,
        "max": max,
        "pattern": re.compile(pattern) if pattern else None,
        "expect": expect or help,
        "min_items": min_items,
        "max_items": max_items,
        "required": required,
    }
    if required:
        return field(metadata=meta)
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    if default is _MISSING:
        raise TypeError("a setting needs a default unless it is required")
    return field(default=default, metadata=meta)


def section_checks(cls: type[Any]) -> Callable[[Any, str], list[Issue]] | None:
    """The cross-field checks of a section: a ``checks(self, path) -> list[Issue]`` method."""
    return getattr(cls, "checks", None)


def build(cls: type[T], raw: Any, path: str = "") -> T:
    """Build section ``cls`` from ``raw`` or raise :class:`ConfigError` with every issue."""
    issues: list[Issue] = []
    value = _build_section(cls, raw, path, issues)
    if issues:
        raise ConfigError(issues)
    return typing.cast(T, value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _build_section(cls: type[Any], raw: Any, path: str, issues: list[Issue]) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        issues.append(Issue(path, raw, f"expected a mapping of {_section_keys(cls)}"))
        return None
    hints = typing.get_type_hints(cls)
    fields = {yaml_key(f): f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            issues.append(
                Issue(_join(path, str(key)), raw[key], f"unknown key; {_suggest(str(key), list(fields))}")
            )
    kwargs: dict[str, Any] = {}
    unusable = False  # a value that could not be converted (or a required one missing)
    for name, f in fields.items():
        sub = _join(path, name)
        if name not in raw:
            if f.metadata.get("required"):
                issues.append(Issue(sub, None, f"required: {f.metadata['help']}"))
                unusable = True
            continue
        before = len(issues)
        kwargs[f.name] = _convert(hints[f.name], raw[name], sub, f.metadata, issues)
        # A section whose own cross-field checks found problems is still built: the checks of
        # the sections around it run too, so every problem of the file is reported at once.
        unusable = (
            unusable
            or (kwargs[f.name] is None and raw[name] is not None)
            or (len(issues) > before and not dataclasses.is_dataclass(_section_type(hints[f.name])))
        )
    if unusable:
        return None
    try:
        section = cls(**kwargs)
    except TypeError as e:  # a required field the loop above already reported
        issues.append(Issue(path, raw, str(e)))
        return None
    checks = section_checks(cls)
    if checks is not None:
        issues.extend(checks(section, path))
    return section


def yaml_key(f: dataclasses.Field[Any]) -> str:
    """The key that sets field ``f`` in a config file (its name unless the setting says otherwise)."""
    return str(f.metadata.get("key") or f.name)


def _section_type(hint: Any) -> Any:
    """The section class of a field hint (``Section`` or ``Section | None``), else the hint itself."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return inner[0] if len(inner) == 1 else hint
    return hint


def _section_keys(cls: type[Any]) -> str:
    names = [yaml_key(f) for f in dataclasses.fields(cls)]
    return ", ".join(names) if names else "nothing"


def _suggest(key: str, names: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'? (allowed: {', '.join(names)})"
    return f"allowed: {', '.join(names)}"


def _convert(hint: Any, value: Any, path: str, meta: Mapping[str, Any], issues: list[Issue]) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if value is None:
            return None
        return _convert(non_none[0], value, path, meta, issues)
    if dataclasses.is_dataclass(hint):
        return _build_section(typing.cast(type[Any], hint), value, path, issues)
    if origin is Literal:
        if value not in args:
            issues.append(Issue(path, value, f"expected one of {', '.join(repr(a) for a in args)}"))
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            issues.append(Issue(path, value, f"expected a list; {meta.get('help', '')}".rstrip("; ")))
            return None
        _check_count(value, path, meta, issues)
        return tuple(_convert(args[0], v, f"{path}[{i}]", meta, issues) for i, v in enumerate(value))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            issues.append(Issue(path, value, f"expected a mapping; {meta.get('help', '')}".rstrip("; ")))
            return None
        _check_count(value, path, meta, issues)
        out: dict[str, Any] = {}
        for k, v in value.items():
            sub = f"{path}.{k}"
            if not isinstance(k, str):
                issues.append(Issue(sub, k, "expected a text key"))
                continue
            out[k] = _convert(args[1], v, sub, {**meta, "pattern": None}, issues)
        return types.MappingProxyType(out)
    return _convert_scalar(hint, value, path, meta, issues)


def _check_count(value: Any, path: str, meta: Mapping[str, Any], issues: list[Issue]) -> None:
    lo, hi = meta.get("min_items"), meta.get("max_items")
    if lo is not None and len(value) < lo:
        issues.append(Issue(path, value, f"expected at least {lo} item(s)"))
    if hi is not None and len(value) > hi:
        issues.append(Issue(path, value, f"expected at most {hi} item(s)"))


def _convert_scalar(hint: Any, value: Any, path: str, meta: Mapping[str, Any], issues: list[Issue]) -> Any:
    if hint is Scalar:
        if isinstance(value, bool | str):
            return value
        if not isinstance(value, int | float):
            issues.append(Issue(path, value, "expected text, a number or true/false"))
            return None
        result: Any = value
    elif hint is Duration:
        try:
            result = Duration(parse_duration(value))
        except DurationError as e:
            issues.append(Issue(path, value, str(e)))
            return None
    elif hint is bool:
        if not isinstance(value, bool):
            issues.append(Issue(path, value, "expected true or false"))
            return None
        return value
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            issues.append(Issue(path, value, "expected a whole number"))
            return None
        result = value
    elif hint is float:
        if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-5 as text; it is the number 0.00001 (YAML 1.2)
        if isinstance(value, bool) or not isinstance(value, int | float):
            issues.append(Issue(path, value, "expected a number"))
            return None
        result = float(value)
    elif hint is str:
        if not isinstance(value, str):
            issues.append(Issue(path, value, "expected text"))
            return None
        pattern = meta.get("pattern")
        if pattern is not None and not pattern.fullmatch(value):
            issues.append(Issue(path, value, f"expected {meta['expect']}"))
            return None
        return value
    else:  # pragma: no cover - a schema bug, not a user error
        raise TypeError(f"unsupported schema type {hint!r} at {path}")
    problem = number_problem(result)
    if problem is not None:  # before the bounds: NaN passes every < and >
        issues.append(Issue(path, value, f"{problem}; expected {STORABLE}"))
        return None
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and result < lo:
        issues.append(Issue(path, value, f"must be at least {_bound(hint, lo)}"))
    if hi is not None and result > hi:
        issues.append(Issue(path, value, f"must be at most {_bound(hint, hi)}"))
    return result


def _bound(hint: Any, bound: float) -> str:
    return format_duration(int(bound)) if hint is Duration else f"{bound:g}"


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def describe(cls: type[Any], prefix: str = "") -> list[tuple[str, Any, str]]:
    """Every key of a section tree as ``(dotted.path, default, help)``, for docs and tests."""
    rows: list[tuple[str, Any, str]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = _join(prefix, yaml_key(f))
        hint = hints[f.name]
        if typing.get_origin(hint) in (Union, types.UnionType):
            inner = [a for a in typing.get_args(hint) if a is not type(None)]
            if len(inner) == 1 and dataclasses.is_dataclass(inner[0]):
                hint = inner[0]
        if dataclasses.is_dataclass(hint):
            rows.append((path, None, f.metadata.get("help", "")))
            rows.extend(describe(typing.cast(type[Any], hint), path))
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        rows.append((path, default, f.metadata.get("help", "")))
    return rows


def key_type(cls: type[Any], dotted: str) -> Any | None:
    """The type hint of the setting ``dotted`` of section tree ``cls`` (None: no such setting).

    ``T | None`` is answered as ``T``; a key inside a mapping of values is not a setting.
    """
    hint: Any = cls
    for key in dotted.split("."):
        if not dataclasses.is_dataclass(hint):
            return None
        fields = {yaml_key(f): f for f in dataclasses.fields(hint)}
        if key not in fields:
            return None
        hint = typing.get_type_hints(hint)[fields[key].name]
        if typing.get_origin(hint) in (Union, types.UnionType):
            inner = [a for a in typing.get_args(hint) if a is not type(None)]
            hint = inner[0] if len(inner) == 1 else hint
    return hint


def setting_keys(cls: type[Any]) -> list[str]:
    """Every dotted key of a section tree that holds a value (not a section)."""
    return [path for path, _, _ in describe(cls) if not dataclasses.is_dataclass(key_type(cls, path))]
