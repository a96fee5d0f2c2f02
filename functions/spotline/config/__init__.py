"""One config schema for the launch function, the CLI and the container."""

from __future__ import annotations

from spotline.config.root import (
    RunConfig,
    ValidationContext,
    apply_overrides,
    as_text,
    parse_run_config,
    run_metric_names,
)
from spotline.config.schema import ConfigError, Issue

__all__ = [
    "ConfigError",
    "Issue",
    "RunConfig",
    "ValidationContext",
    "apply_overrides",
    "as_text",
    "parse_run_config",
    "run_metric_names",
]
