"""What every command shares: printing to the terminal, AWS calls that fail as one line and a hint,
and stopping cleanly when the terminal or a signal asks."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from spotline_local.cli.targets import CliError

T = TypeVar("T")
# The signals a long-running command ends on, with its clean-up: Ctrl-C, kill, a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; clean-up runs as the exception unwinds (``finally`` blocks)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def aws_call(call: Callable[[], T]) -> T:
    """``call()``, its AWS errors turned into a :class:`CliError` a user can act on."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    try:
        return call()
    except EndpointConnectionError as e:
        raise CliError(
            f"cannot reach {e.kwargs.get('endpoint_url')}", "is `spotline local up` still running?"
        ) from e
    except NoCredentialsError as e:
        raise CliError("no AWS credentials", "configure them, or use the local stack") from e
    except (ClientError, BotoCoreError) as e:
        raise CliError(str(e), "check the stack name and your permissions") from e


def _raise_interrupted(signum: int, frame: Any) -> None:
    # Later signals while the clean-up runs are ignored: it is bounded and already under way.
    for stop in STOP_SIGNALS:
        signal.signal(stop, signal.SIG_IGN)
    raise Interrupted(signum)


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Within the block SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread, so
    every command's ``finally`` clean-up runs (the stack stops, its processes end) whichever way it
    is stopped; the previous handlers come back after it."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return
    previous = {s: signal.signal(s, _raise_interrupted) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)


@contextmanager
def stop_requests() -> Iterator[dict[str, int]]:
    """Within the block, stop signals only set ``flags["signum"]`` (for loops that stop on their own)."""
    flags: dict[str, int] = {}

    def request(signum: int, frame: Any) -> None:
        flags.setdefault("signum", signum)

    if threading.current_thread() is not threading.main_thread():
        yield flags
        return
    previous = {s: signal.signal(s, request) for s in STOP_SIGNALS}
    try:
        yield flags
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)
