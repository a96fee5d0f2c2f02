"""SIGTERM as a request: finish the current step, checkpoint, exit (SageMaker allows 120 s).

SageMaker sends SIGTERM when a Spot instance is reclaimed or a job is stopped, and SIGKILL 120 s
later. :class:`StopRequest` turns the signal into a flag the training loop polls between steps, and
ends the process itself after a grace period (``SPOTLINE_STOP_GRACE_S``, default 110 s) should the
loop never get there. Exit with :data:`SIGTERM_EXIT_CODE` and no failure file after saving.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import types

log = logging.getLogger(__name__)

GRACE_ENV = "SPOTLINE_STOP_GRACE_S"
DEFAULT_GRACE_S = 110.0
SIGTERM_EXIT_CODE = 143  # 128 + SIGTERM, what a shell reports for a process ended by SIGTERM


class StopRequest:
    """Set by SIGTERM. A watchdog ends the process after the grace period if the loop is stuck;
    every file is written atomically, so even that exit leaves no half-written checkpoint."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._previous: object = None

    def install(self) -> StopRequest:
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: types.FrameType | None) -> None:
        if self._event.is_set():
            return
        self._event.set()
        grace = float(os.environ.get(GRACE_ENV, DEFAULT_GRACE_S))
        log.warning("SIGTERM: stopping after the current step; forced exit in %.0f s", grace)
        watchdog = threading.Timer(grace, self._force_exit)
        watchdog.daemon = True
        watchdog.start()

    @staticmethod
    def _force_exit() -> None:
        log.error("still running after the SIGTERM grace period; exiting now")
        logging.shutdown()
        os._exit(SIGTERM_EXIT_CODE)

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self) -> None:
        """Ask for a stop from code (same path as SIGTERM, without the watchdog)."""
        self._event.set()
