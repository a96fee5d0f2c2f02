"""Which metric names a config's run can produce: the one answer the schema checks gates against.

A name a run never reports can never pass a gate or guide a tuner, so a ``promote`` metric or a
tuning ``objective`` outside this list is refused before anything is paid for. For spotline's own
image the names are those its container prints (:mod:`spotline.metric_names`), less the ones its
config cannot produce: validation metrics need a ``val`` channel, and a training run reports no
inference throughput.
"""

from __future__ import annotations

from spotline.config.job import JobSection
from spotline.metric_names import ALL, INFER_THROUGHPUT, VAL_MAP, VAL_MAP50

VALIDATION_CHANNEL = "val"


def run_metric_names(job: JobSection) -> tuple[str, ...]:
    """The metric names a training run of ``job`` reports, in the order the container prints them."""
    names = [name for name in ALL if name != INFER_THROUGHPUT]
    if VALIDATION_CHANNEL not in job.channels:
        names = [name for name in names if name not in (VAL_MAP50, VAL_MAP)]
    return tuple(names)
