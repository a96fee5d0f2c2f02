"""Every key of the ledger's one table, in one place (see :mod:`spotline.ledger.table` for the layout).

| item                | pk                 | sk                  | gsi1pk           | gsi1sk                 |
|---------------------|--------------------|---------------------|------------------|------------------------|
| run                 | ``RUN#<run id>``   | ``RUN``             | ``RUNS``         | ``<created>#<run id>`` |
| attempt             | ``RUN#<run id>``   | ``ATTEMPT#NN``      |                  |                        |
| batch               | ``BATCH#<name>``   | ``BATCH``           | ``OPEN_BATCHES`` | ``BATCH#<name>``       |
| image of a batch    | ``BATCH#<name>``   | ``IMG#<rel key>``   |                  |                        |
| skipped file        | ``BATCH#<name>``   | ``SKIP#<rel key>``  |                  |                        |
| skipped files count | ``BATCH#<name>``   | ``SKIPS``           |                  |                        |
| close of generation | ``BATCH#<name>``   | ``CLOSE#<gen:06d>`` |                  |                        |
| notice sent (once)  | a run's or batch's | ``NOTICE#<what>``   |                  |                        |
| ignored object      | ``IGNORED#<hash>`` | ``NOTICE#ignored``  |                  |                        |
| run of a source     | ``SOURCE#<b>/<k>`` | ``RUN#<created>#<id>`` |               |                        |
| the promoted model  | ``MODEL``          | ``PROMOTED``        |                  |                        |
| ... of your image   | ``MODEL``          | ``PROMOTED#<image>``|                  |                        |
| trial of a tuning run | a run's          | ``TRIAL#<job name>`` |                 |                        |
| run of a tuning job | ``TUNINGJOB#<name>`` | ``RUN``           |                  |                        |
"""

from __future__ import annotations

from collections.abc import Callable

RUN_SK = "RUN"
RUNS_INDEX_PK = "RUNS"
ATTEMPT_PREFIX = "ATTEMPT#"
BATCH_SK = "BATCH"
OPEN_BATCHES = "OPEN_BATCHES"
IMAGE_PREFIX = "IMG#"
SKIPPED_PREFIX = "SKIP#"
SKIPS_SK = "SKIPS"
CLOSE_PREFIX = "CLOSE#"
NOTICE_PREFIX = "NOTICE#"
SOURCE_RUN_PREFIX = "RUN#"
MODEL_PK = "MODEL"
PROMOTED_SK = "PROMOTED"
TRIAL_PREFIX = "TRIAL#"

run_pk: Callable[[str], str] = "RUN#{}".format
attempt_sk: Callable[[int], str] = (ATTEMPT_PREFIX + "{:02d}").format
batch_pk: Callable[[str], str] = "BATCH#{}".format
close_sk: Callable[[int], str] = (CLOSE_PREFIX + "{:06d}").format
image_sk: Callable[[str], str] = (IMAGE_PREFIX + "{}").format
skipped_sk: Callable[[str], str] = (SKIPPED_PREFIX + "{}").format
notice_sk: Callable[[str], str] = (NOTICE_PREFIX + "{}").format
ignored_pk: Callable[[str], str] = "IGNORED#{}".format
source_pk: Callable[[str, str], str] = "SOURCE#{}/{}".format
source_run_sk: Callable[[str, str], str] = (SOURCE_RUN_PREFIX + "{}#{}").format


def promoted_sk(image: str | None) -> str:
    """The promoted model of spotline's image (``None``: the one inference uses), or of ``image``."""
    return PROMOTED_SK if image is None else f"{PROMOTED_SK}#{image}"


trial_sk: Callable[[str], str] = (TRIAL_PREFIX + "{}").format
tuning_job_pk: Callable[[str], str] = "TUNINGJOB#{}".format
