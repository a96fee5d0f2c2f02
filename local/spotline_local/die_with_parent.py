"""``python -m spotline_local.die_with_parent PARENT_PID MODULE ARGS...``: run MODULE, ending with its parent
(``... PARENT_PID --exec COMMAND ARGS...``: the same for any command, which replaces this process).

The local stack starts moto and every job's container through this. On Linux the process asks the
kernel for SIGTERM when the thread that started it ends (``PR_SET_PDEATHSIG``), so even a stack that
is killed outright (SIGKILL, no clean-up) leaves no moto server or training process running under
PID 1. The container's SIGTERM handler then checkpoints and exits as it does for a Spot interruption.
Elsewhere it simply runs MODULE.
"""

from __future__ import annotations

import ctypes
import os
import runpy
import signal
import sys

PR_SET_PDEATHSIG = 1
EXEC = "--exec"


def die_with_parent(parent_pid: int) -> None:
    """Ask for SIGTERM when the parent ends; end now if it already has (it died before we asked)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit("usage: python -m spotline_local.die_with_parent PARENT_PID MODULE [ARGS...]")
    die_with_parent(int(argv[0]))
    if argv[1] == EXEC:
        os.execvp(argv[2], argv[2:])  # noqa: S606 - the caller's own command line
    module, sys.argv = argv[1], [argv[1], *argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def command(module: str, *args: str) -> list[str]:
    """The argv that runs ``python -m module args...`` as a child that ends with this process."""
    return [sys.executable, "-m", __name__, str(os.getpid()), module, *args]


def exec_command(argv: list[str]) -> list[str]:
    """The argv that runs ``argv`` as a child that ends with this process (the request survives exec)."""
    return [sys.executable, "-m", __name__, str(os.getpid()), EXEC, *argv]


if __name__ == "__main__":
    main(sys.argv[1:])
