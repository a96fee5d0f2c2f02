"""The metric lines the container prints and the regexes SageMaker uses to read them.

The line format is the container toolkit's (``spotline_toolkit.metrics``: ``#metric <name>=<value>
step=<step>``), which any image may print; the control plane sends :func:`metric_definitions`,
regexes of that format for spotline's image's names, as ``AlgorithmSpecification.MetricDefinitions``
(tests/container/test_toolkit.py keeps the two in step).

The container also keeps the same points as JSON records in :data:`METRICS_FILE` under its
checkpoint directory, which SageMaker syncs to ``runs/<run-id>/checkpoints/`` while the job runs:
one object per line, ``{"step", "name", "value", "wall", "attempt"}`` (``value`` is null for a
non-finite number), plus the events :data:`ATTEMPT_START` (``value`` = the first step of the
attempt, with ``max_iter``) and :data:`ATTEMPT_INTERRUPTED` (``value`` = the step it stopped at).
The run's report and ``spotline status --watch`` read it, so curves outlive the job without
CloudWatch.
"""

from __future__ import annotations

TRAIN_LOSS = "train/loss"
TRAIN_LR = "train/lr"
TRAIN_THROUGHPUT = "train/images_per_s"
TRAIN_ITERATION = (
    "train/iteration"  # the step reached: with the checkpoint in S3, the work an interruption lost
)
VAL_MAP50 = "val/mAP50"
VAL_MAP = "val/mAP"
INFER_THROUGHPUT = "infer/images_per_s"

ALL = (TRAIN_LOSS, TRAIN_LR, TRAIN_THROUGHPUT, TRAIN_ITERATION, VAL_MAP50, VAL_MAP, INFER_THROUGHPUT)

METRICS_FILE = "metrics.jsonl"
ATTEMPT_START = "attempt/start"
ATTEMPT_INTERRUPTED = "attempt/interrupted"
EVENTS = (ATTEMPT_START, ATTEMPT_INTERRUPTED)
_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def metric_regex(name: str) -> str:
    return "#metric " + name.replace(".", r"\.") + "=" + _NUMBER


def metric_definitions() -> list[dict[str, str]]:
    return [{"Name": name, "Regex": metric_regex(name)} for name in ALL]
