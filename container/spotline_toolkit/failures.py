"""The failure contract: tell the user's errors from the platform's, in the file SageMaker reads.

Exit status 0: done; :data:`~spotline_toolkit.stopping.SIGTERM_EXIT_CODE` (143): stopped by SIGTERM
after saving, no failure file; 1: failed, with ``/opt/ml/output/failure`` starting ``UserError:``
(the user must fix something: spotline alerts and does not relaunch) or ``PlatformError:`` (worth a
relaunch). SageMaker shows the text as the job's FailureReason, ``AlgorithmError: UserError: ...``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from spotline_toolkit.stopping import SIGTERM_EXIT_CODE

log = logging.getLogger(__name__)

USER_ERROR = "UserError"
PLATFORM_ERROR = "PlatformError"
MAX_FAILURE_CHARS = 1000  # SageMaker keeps about 1 KB of FailureReason


class UserError(Exception):
    """A problem the user must fix (config, data, channels); relaunching would fail the same way."""


class PlatformError(Exception):
    """A problem of the machine or the platform (a crashed worker, unreadable SageMaker files)."""


class Interrupted(Exception):
    """SIGTERM arrived; state was saved and the process should exit with :data:`SIGTERM_EXIT_CODE`."""


def write_failure(path: Path, kind: str, message: str) -> None:
    """``<kind>: <message>`` (cut to what SageMaker keeps) to the failure file, and to the log."""
    text = f"{kind}: {message}"[:MAX_FAILURE_CHARS]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError:
        log.exception("could not write the failure file %s", path)
    log.error("%s", text)


def run_job(job: Callable[[], object], failure_file: Path) -> int:
    """Run ``job`` under the contract; returns the exit status (never raises)."""
    try:
        job()
    except Interrupted as e:
        log.warning("%s; state saved, exiting", e)
        return SIGTERM_EXIT_CODE
    except UserError as e:
        write_failure(failure_file, USER_ERROR, str(e))
    except Exception as e:
        log.exception("platform error")
        write_failure(failure_file, PLATFORM_ERROR, f"{type(e).__name__}: {e}")
    else:
        return 0
    return 1
