"""The test run's own promise: tests that share a costly fixture run on one xdist worker.

pytest 9.2 renamed the attribute pytest-xdist 3.8 rewrites to keep a group together, and the suite
silently built the local stack and the SAM bundle once per worker. This runs the mechanism the
root conftest uses (a group marked as each test is collected) on a probe suite.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from tests.support.processes import run_watched

PROBE = """
import os

import pytest


@pytest.fixture(scope="module")
def costly():
    with open(os.environ["BUILT_LOG"], "a") as log:
        log.write(f"{os.getpid()}\\n")
    return 1


@pytest.mark.parametrize("n", range(6))
def test_shares(costly, n):
    assert costly == 1
"""

CONFTEST = """
import pytest


def pytest_itemcollected(item):
    if item.path.name == "test_probe.py":
        item.add_marker(pytest.mark.xdist_group("probe"))
"""


def test_a_group_runs_on_one_worker_so_its_module_fixture_is_built_once(tmp_path: Path) -> None:
    (tmp_path / "test_probe.py").write_text(textwrap.dedent(PROBE))
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (tmp_path / "test_other.py").write_text("def test_other():\n    pass\n")
    built = tmp_path / "built.log"
    done = run_watched(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env={"BUILT_LOG": str(built), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "7 passed" in done.stdout
    assert len(built.read_text().splitlines()) == 1
