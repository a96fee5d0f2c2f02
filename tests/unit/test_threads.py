"""Threads of a job on a shared machine: the cores free, idle threads asleep; torch's defaults otherwise."""

from __future__ import annotations

import pytest

from spotline_container.threads import _cpu_times, configure_threads, resolve_threads

STAT = "cpu  1 2 3 4 5 6 7 8\ncpu0 10 0 10 80 0 0 0 0\ncpu1 50 0 50 0 0 0 0 0\n"


def test_idle_and_total_time_of_the_cores_this_process_may_use() -> None:
    assert _cpu_times(STAT, {0}) == (80, 100)
    assert _cpu_times(STAT, {0, 1}) == (80, 200)


@pytest.mark.parametrize(
    ("value", "free", "expected"),
    [("", 2.0, None), ("auto", 2.0, 2), ("auto", 0.6, 1), ("auto", 0.0, 1), ("auto", 1.6, 2), ("3", 0.0, 2)],
)
def test_auto_takes_the_free_cores_and_a_number_is_capped_to_the_cores(
    value: str, free: float, expected: int | None
) -> None:
    assert resolve_threads(value, cores=2, free=lambda: free) == expected


def test_asking_for_threads_sets_openmp_before_torch_and_puts_idle_threads_to_sleep() -> None:
    env = {"SPOTLINE_TORCH_THREADS": "auto"}
    threads = configure_threads(env, free=lambda: 1.0)
    assert threads == 1
    assert env == {
        "SPOTLINE_TORCH_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
        "KMP_BLOCKTIME": "0",
    }


def test_nothing_asked_keeps_torchs_defaults_for_a_dedicated_instance() -> None:
    env: dict[str, str] = {}
    assert configure_threads(env) is None and env == {}
    env = {"SPOTLINE_TORCH_THREADS": "2", "OMP_WAIT_POLICY": "ACTIVE"}
    configure_threads(env)
    assert env["OMP_WAIT_POLICY"] == "ACTIVE"  # what the environment says wins
