"""Metric lines on stdout, in the one format the control plane's ``MetricDefinitions`` read.

``#metric <name>=<value> step=<step>``: print :func:`metric_line` and give spotline
:func:`metric_regex` of each name as ``job.metrics`` (:func:`job_metrics` writes the mapping):
SageMaker reads the job's log with them, and spotline's promotion gate reads what it found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
# SageMaker's metric names: letters, digits and a few signs; spotline's ``job.metrics`` keys alike.
NAME = re.compile(r"[A-Za-z0-9_.:/@-]{1,255}")


def metric_line(name: str, value: float, step: int) -> str:
    """``#metric train/loss=0.5123 step=120``; whole numbers in full (``#metric train/iteration=1234567
    step=1234567``); a non-finite value prints as ``nan`` or ``inf``, which :func:`metric_regex` does
    not read (SageMaker records nothing for it)."""
    if not NAME.fullmatch(name):
        raise ValueError(f"metric name {name!r}: letters, digits and _ . : / @ - only")
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else f"{value:.6g}"
    return f"#metric {name}={text} step={int(step)}"


def metric_regex(name: str) -> str:
    """The regex whose first group reads ``name``'s value from a :func:`metric_line`."""
    return "#metric " + re.escape(name) + "=" + NUMBER


def job_metrics(names: Iterable[str]) -> dict[str, str]:
    """``job.metrics`` of a spotline config for these names: name -> regex."""
    return {name: metric_regex(name) for name in names}
