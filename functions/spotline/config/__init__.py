"""One config schema for the launch function, the CLI and the container."""

from __future__ import annotations

from spotline.config.root import RunConfig, ValidationContext, apply_overrides, parse_run_config
from spotline.config.schema import ConfigError, Issue

__all__ = ["ConfigError", "Issue", "RunConfig", "ValidationContext", "apply_overrides", "parse_run_config"]
