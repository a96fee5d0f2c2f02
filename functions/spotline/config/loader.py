"""Reading untrusted YAML: safe constructors only, and caps on size, aliases, depth and nodes."""

from __future__ import annotations

from typing import Any

import yaml

from spotline.config.schema import ConfigError, Issue

MAX_CONFIG_BYTES = 256 * 1024
MAX_ALIASES = 32
MAX_DEPTH = 32
MAX_NODES = 20_000
# An override (a SageMaker hyperparameter, whose values SageMaker caps at 2,500 characters).
MAX_OVERRIDE_BYTES = 4 * 1024


class _AliasLimitReached(yaml.YAMLError):
    """More aliases than :data:`MAX_ALIASES` (a YAML error, but never one of plain text)."""


class _DuplicateKey(yaml.YAMLError):
    """A mapping names the same key twice: which value was meant is not for spotline to guess."""


class _LimitedSafeLoader(yaml.SafeLoader):
    """SafeLoader (no Python tags) that refuses documents built to explode when walked."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise _AliasLimitReached(
                    f"more than {MAX_ALIASES} aliases (*refs) at line {event.start_mark.line + 1}: "
                    "alias expansion is capped to keep configs from exploding"
                )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *base`` may be overridden key by key
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, str | int | float | bool) or key is None:
                if key in seen:
                    raise _DuplicateKey(
                        f"duplicate key {key!r} at line {line} (first at line {seen[key]}): keep one of them"
                    )
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml_document(data: bytes | str, *, max_bytes: int = MAX_CONFIG_BYTES) -> Any:
    """Parse one YAML document safely or raise :class:`ConfigError` naming the problem."""
    size = len(data.encode() if isinstance(data, str) else data)
    if size > max_bytes:
        raise ConfigError([Issue("", f"{size} bytes", f"the file must be at most {max_bytes} bytes")])
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError([Issue("", f"byte {e.start}", "the file must be UTF-8 text")]) from e
    else:
        text = data
    if not text.strip():
        raise ConfigError(
            [Issue("", "an empty file", "expected a YAML mapping with at least a 'job' section")]
        )
    try:
        document = _parse(text)
    except _DuplicateKey as e:
        raise ConfigError([Issue("", str(e), "each key at most once in a mapping")]) from e
    except yaml.YAMLError as e:
        raise ConfigError([Issue("", _yaml_problem(e), "expected valid YAML (safe tags only)")]) from e
    _check_shape(document)
    return document


def load_yaml_value(text: str, *, max_bytes: int = MAX_OVERRIDE_BYTES) -> Any:
    """One override value YAML-typed (``'0.02'`` -> 0.02) under the same limits as a file.

    Text that is not valid YAML stays the text it is; a value over the size, alias, depth or
    node limits raises :class:`ConfigError`.
    """
    size = len(text.encode())
    if size > max_bytes:
        too_big = f"an override value must be at most {max_bytes} bytes"
        raise ConfigError([Issue("", f"{size} bytes", too_big)])
    try:
        value = _parse(text)
    except (_AliasLimitReached, _DuplicateKey) as e:
        raise ConfigError([Issue("", _yaml_problem(e), "expected a plain value")]) from e
    except yaml.YAMLError:
        return text
    _check_shape(value)
    return value


class _OneLineDumper(yaml.SafeDumper):
    """SafeDumper writing text with line breaks double-quoted (escaped), never over several lines."""

    def represent_str(self, data: str) -> yaml.ScalarNode:
        if any(c in data for c in "\n\r\x85\u2028\u2029") or not data.isprintable():
            return self.represent_scalar("tag:yaml.org,2002:str", data, style='"')
        return super().represent_str(data)


_OneLineDumper.add_representer(str, _OneLineDumper.represent_str)


def dump_yaml_value(value: Any) -> str:
    """``value`` as the override text :func:`load_yaml_value` reads back equal (SageMaker
    hyperparameters are strings): ``0.00001`` is ``1.0e-05`` (``1e-05`` is text in YAML 1.1),
    the text ``'true'`` stays text, lists and mappings are written in flow style, on one line
    (line breaks and non-ASCII characters escaped in double quotes)."""
    text = yaml.dump(
        value,
        Dumper=_OneLineDumper,
        default_flow_style=True,
        allow_unicode=False,
        width=2**31 - 1,
        sort_keys=False,
    )
    text = text.removesuffix("\n").removesuffix("\n...")  # a plain scalar's document-end marker
    return text


def _parse(text: str) -> Any:
    loader = _LimitedSafeLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(problem)


def _check_shape(document: Any) -> None:
    """Walk the document once with a budget: deep nesting and shared-node blow-ups are refused."""
    budget = MAX_NODES
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        node, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise ConfigError([Issue("", "too many values", f"a config holds at most {MAX_NODES} values")])
        if depth > MAX_DEPTH:
            raise ConfigError([Issue("", f"nesting depth {depth}", f"expected at most {MAX_DEPTH} levels")])
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
            stack.extend((k, depth + 1) for k in node)
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
