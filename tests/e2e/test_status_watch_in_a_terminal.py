"""``spotline status --watch`` in a real terminal (tmux): the bar advances, exit 0 once the run settles."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import E2E, TRAIN_CONFIG, wait_for

pytestmark = pytest.mark.slow

KEY = "configs/e2e-watch.yaml"
# Long enough to be watched: several refreshes between its first metrics and its end. No promote
# gate: this run must not replace the model the other end-to-end tests use.
CONFIG = TRAIN_CONFIG.replace("promote: {metric: val/mAP50, min: 0.0}\n", "").replace(
    "max_iter: 60", "max_iter: 400"
)
ITERATION = re.compile(r"iteration (\d+)/400")
STILL_FOR_S = 120  # the screen may stay the same this long before the test says nothing moves


@pytest.fixture
def tmux() -> Iterator[list[str]]:
    """A tmux server of this test's own (its own socket): nothing of anyone else's is touched."""
    command = ["tmux", "-L", f"spotline-watch-{os.getpid()}"]
    try:
        yield command
    finally:
        subprocess.run([*command, "kill-server"], check=False, capture_output=True)


def screen(tmux: list[str]) -> str:
    return subprocess.run(
        [*tmux, "capture-pane", "-p", "-t", "watch"], capture_output=True, text=True, check=True
    ).stdout


def test_the_bar_advances_and_the_watch_ends_when_the_run_settles(
    e2e: E2E, dataset: dict[str, Path], tmux: list[str]
) -> None:
    e2e.put(KEY, CONFIG)
    run = wait_for("the run to start", lambda: e2e.run_for(KEY))
    cli = f"{sys.executable} -m spotline_local.cli.main"
    watch = f"{cli} status {run.run_id} --watch --workdir {e2e.stack.workdir}"
    subprocess.run(
        [
            *tmux,
            "new-session",
            "-d",
            "-s",
            "watch",
            "-x",
            "150",
            "-y",
            "40",
            f"{watch}; echo watch-exit=$?; sleep 600",
        ],
        check=True,
    )
    seen: list[int] = []
    screens: list[str] = []
    last, changed = "", time.monotonic()
    while "watch-exit=" not in last:
        text = screen(tmux)
        if text != last:
            last, changed = text, time.monotonic()
            screens.append(text)
            seen += [int(n) for n in ITERATION.findall(text)][:1]
        assert time.monotonic() - changed < STILL_FOR_S, f"nothing moved on the screen:\n{last}"
        time.sleep(0.3)
    assert "watch-exit=0" in last, last
    assert e2e.ledger.get_run(run.run_id).status.value == "SUCCEEDED"  # type: ignore[union-attr]
    assert "settled: e2e-watch.yaml SUCCEEDED" in last
    assert "saved $" in last  # the run's money, worded as on its page
    progress = sorted(set(seen))
    shown = "\n---\n".join(screens[:6])
    assert len(progress) >= 2 and seen == sorted(seen), f"the bar did not advance: {seen}\n{shown}"
