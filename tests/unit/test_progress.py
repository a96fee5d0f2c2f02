"""Waits fail when nothing moves, never at a fixed deadline."""

from __future__ import annotations

import pytest

from spotline_local.progress import Stalled, wait_for_progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_slow_run_that_keeps_moving_is_waited_for_past_any_stall_limit() -> None:
    clock = FakeClock()
    steps = iter(range(1000))
    seen: list[object] = []
    result = wait_for_progress(
        "the run",
        lambda: "done" if clock.now >= 500 else None,  # 500 s: far past the 30 s stall limit
        lambda: next(steps) // 20,  # moves every 20 s
        stall_s=30,
        on_change=seen.append,
        clock=clock,
        sleep=clock.sleep,
    )
    assert result == "done" and clock.now >= 500
    assert seen[:3] == [1, 2, 3]


def test_nothing_moving_fails_after_the_stall_limit_naming_what_it_saw() -> None:
    clock = FakeClock()
    with pytest.raises(
        Stalled, match=r"nothing moved for 30 s while waiting for the run \(last seen: 'iteration 40'\)"
    ):
        wait_for_progress(
            "the run", lambda: None, lambda: "iteration 40", stall_s=30, clock=clock, sleep=clock.sleep
        )
    assert 30 <= clock.now <= 32
