"""The shipped reference config documents every key with its true default, and is itself valid."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

import spotline.config
from spotline.config import RunConfig, parse_run_config
from spotline.config.schema import Duration, describe

REFERENCE = Path(spotline.config.__file__).parent / "reference.yaml"


def _lookup(document: Any, dotted: str) -> tuple[bool, Any]:
    node = document
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


def test_every_key_is_documented() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    missing = []
    for path, _default, _help in describe(RunConfig):
        leaf = path.rsplit(".", 1)[-1]
        if not re.search(rf"^\s*#?\s*{re.escape(leaf)}:", text, flags=re.MULTILINE):
            missing.append(path)
    assert missing == []


def test_active_keys_show_the_real_defaults() -> None:
    document = yaml.safe_load(REFERENCE.read_text(encoding="utf-8"))
    config = parse_run_config(REFERENCE.read_bytes())
    wrong = []
    for path, default, _help in describe(RunConfig):
        present, written = _lookup(document, path)
        if not present or isinstance(written, dict) or path == "job.channels":
            continue
        if isinstance(default, Duration):
            _, parsed = _lookup_attr(config, path)
            if parsed != default:
                wrong.append((path, written, default))
        elif (list(default) if isinstance(default, tuple) else default) != written:
            wrong.append((path, written, default))
    assert wrong == []


def _lookup_attr(config: Any, dotted: str) -> tuple[bool, Any]:
    node = config
    for key in dotted.split("."):
        node = getattr(node, key)
    return True, node


def test_reference_is_valid() -> None:
    config = parse_run_config(REFERENCE.read_bytes())
    assert config.job.channels["train"] == "datasets/rail/train/"
