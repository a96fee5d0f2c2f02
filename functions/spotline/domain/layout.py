"""The drop bucket's layout: which prefixes users write and which spotline writes.

Users write ``configs/``, ``datasets/``, ``inference/`` and ``adopt/`` (configs of jobs launched
elsewhere that ask spotline to adopt them: no rule watches it); spotline writes only under
``runs/`` and ``results/`` (the promoted model is a ledger record, not an object). Nothing spotline
writes can therefore trigger it again.
"""

from __future__ import annotations

import difflib

CONFIGS = "configs/"
DATASETS = "datasets/"
INFERENCE = "inference/"
ADOPT = "adopt/"
RUNS = "runs/"
RESULTS = "results/"
USER_PREFIXES = (CONFIGS, DATASETS, INFERENCE, ADOPT)
SPOTLINE_PREFIXES = (RUNS, RESULTS)
CONFIG_SUFFIXES = (".yaml", ".yml")
MAX_KEY_BYTES = 1024


class UnsafeKey(ValueError):
    """An S3 key spotline refuses to act on (path tricks, control characters, wrong prefix)."""


def check_user_key(key: str, prefix: str) -> str:
    """``key`` if it is a plain object key under ``prefix``; raise :class:`UnsafeKey` otherwise."""
    if len(key.encode()) > MAX_KEY_BYTES:
        raise UnsafeKey(f"key longer than {MAX_KEY_BYTES} bytes")
    if not key.startswith(prefix):
        raise UnsafeKey(f"key {key!r} is not under {prefix}")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts[:-1]) or parts[-1] in ("", ".", ".."):
        raise UnsafeKey(f"key {key!r} has an empty, '.' or '..' path segment")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise UnsafeKey(f"key {key!r} has control characters")
    return key


def is_config_key(key: str) -> bool:
    return key.startswith(CONFIGS) and key.lower().endswith(CONFIG_SUFFIXES)


def near_miss_reason(key: str) -> str | None:
    """Why a key that looks meant for ``configs/`` starts nothing (what the user is told), or None
    for a key that is none of spotline's business."""
    folder, slash, rest = key.partition("/")
    name = key.rsplit("/", 1)[-1]
    if key.startswith(CONFIGS):
        if not key.lower().endswith(CONFIG_SUFFIXES):
            return f"only .yaml or .yml files under {CONFIGS} start runs, and {name!r} is not one"
        return None
    if not key.lower().endswith(CONFIG_SUFFIXES):
        return None
    if not slash:
        return f"a config at the top of the bucket starts nothing: put it under {CONFIGS} ({CONFIGS}{key})"
    wanted = CONFIGS.rstrip("/")
    if folder.lower() == wanted or difflib.SequenceMatcher(None, folder.lower(), wanted).ratio() >= 0.8:
        return f"configs start runs only under {CONFIGS} (lower case): move it to {CONFIGS}{rest}"
    return None


def run_prefix(run_id: str) -> str:
    return f"{RUNS}{run_id}/"


def run_config_key(run_id: str) -> str:
    return f"{run_prefix(run_id)}config.yaml"


def run_rejection_key(run_id: str) -> str:
    return f"{run_prefix(run_id)}rejection.json"


def run_report_key(run_id: str) -> str:
    return f"{run_prefix(run_id)}report.json"


def run_page_key(run_id: str) -> str:
    return f"{run_prefix(run_id)}report.html"


def run_metrics_key(run_id: str, metrics_file: str) -> str:
    """The container's metrics file as SageMaker syncs it from the checkpoint directory."""
    return f"{run_prefix(run_id)}checkpoints/{metrics_file}"


def checkpoint_uri(bucket: str, run_id: str) -> str:
    return f"s3://{bucket}/{run_prefix(run_id)}checkpoints/"


def output_uri(bucket: str, run_id: str) -> str:
    return f"s3://{bucket}/{run_prefix(run_id)}output/"


def results_prefix(batch: str) -> str:
    return f"{RESULTS}{batch}/"
