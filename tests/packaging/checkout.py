"""What the packaging tests share: the checkout as a clone has it, and subprocesses that fail loudly."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from tests.support.processes import run_watched

REPO = Path(__file__).resolve().parents[2]

# Environment variables that would point a Python started by a test at this checkout or at .venv.
_LEAKY = re.compile(r"^(PYTHON.*|VIRTUAL_ENV|CONDA_PREFIX|PIP_REQUIRE_VIRTUALENV|__PYVENV_LAUNCHER__)$")


def copy_checkout(dest: Path) -> Path:
    """The files a clone of this checkout holds once its changes are committed, copied under ``dest``.

    Tracked files plus new files git does not ignore: a build output or a stray file in the work tree
    cannot make an artifact look complete.
    """
    listed = run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, env=tool_env()
    ).stdout
    for relative in filter(None, listed.split("\0")):
        source = REPO / relative
        if source.is_file():  # a tracked file deleted in the work tree is gone from the next commit too
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def tool_env(**extra: str) -> dict[str, str]:
    """This process's environment (proxies, the registry settings pip needs) minus Python's own paths."""
    env = {name: value for name, value in os.environ.items() if not _LEAKY.match(name)}
    env.update(extra)
    return env


def run(
    args: Sequence[str | Path],
    *,
    cwd: Path,
    env: Mapping[str, str],
) -> subprocess.CompletedProcess[str]:
    """Run ``args``; a non-zero exit fails the test with the command and the end of its output."""
    command = [str(a) for a in args]
    done = run_watched(command, cwd=cwd, env=env)
    if done.returncode != 0:
        pytest.fail(
            f"`{' '.join(command)}` exited {done.returncode}\n"
            f"--- stdout (end)\n{done.stdout[-3000:]}\n--- stderr (end)\n{done.stderr[-3000:]}",
            pytrace=False,
        )
    return done


def canonical(distribution: str) -> str:
    """A distribution's name as packaging compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", distribution).lower()
