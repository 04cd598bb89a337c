"""lab.background: work the run does not wait for, on a daemon thread."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from lab.background import YIELDING_NICE, Pending, in_background


def test_result_is_the_work_s_value_and_the_thread_is_a_daemon() -> None:
    seen: list[bool] = []

    def work() -> int:
        seen.append(threading.current_thread().daemon)
        return 42

    assert in_background(work, name="t").result(timeout=10) == 42
    # A stopped run exits without waiting for work it no longer needs.
    assert seen == [True]


def test_an_error_in_the_background_is_raised_where_the_result_is_read() -> None:
    def fail() -> int:
        raise ValueError("boom")

    pending = Pending(fail, name="t")
    with pytest.raises(ValueError, match="boom"):
        pending.result()


def test_queued_work_runs_in_order_on_the_value_after_the_build() -> None:
    order: list[str] = []

    def build() -> list[str]:
        time.sleep(0.05)  # the queued work must still wait for it
        order.append("build")
        return order

    pending = Pending(build, name="t")
    pending.then(lambda value: value.append("first"))
    pending.then(lambda value: value.append("second"))
    assert pending.result() is order
    assert order == ["build", "first", "second"]
    assert pending.done()
    assert pending.work_s >= 0.05


def test_work_queued_behind_a_failed_build_fails_with_the_build_s_error() -> None:
    ran: list[int] = []

    def fail() -> list[int]:
        raise RuntimeError("training failed")

    pending = Pending(fail, name="t")
    pending.then(lambda value: ran.append(1))
    with pytest.raises(RuntimeError, match="training failed"):
        pending.result()
    assert ran == []


def test_the_noise_floor_built_in_the_background_is_the_one_built_in_the_foreground() -> None:
    """Regression for building the floor beside the run: same factors and lists as a build
    on the calling thread with every core, whatever the threads and the timing."""
    from pathlib import Path

    import numpy as np

    from lab.pipeline import _noise_floor, prepare, simulate_prepared
    from lab.scenario import load_scenario

    root = Path(__file__).resolve().parents[3]
    scenario = load_scenario(
        root / "scenarios" / "quickstart.toml",
        ["traffic.duration=10m", "traffic.users=6000", "traffic.items=400"],
    )
    prepared = prepare(scenario, threads=2)
    assert prepared.floor_job is not None
    simulate_prepared(prepared)  # queues the traffic users' rows behind the training
    background = prepared.noise_floor
    assert background is not None and prepared.noise_floor_s() is not None
    builder = prepared.builder
    assert builder is not None
    baseline = prepared.versions[0]
    foreground = _noise_floor(
        scenario,
        baseline.trained_model,
        background.model.spec.seed,
        builder,
        prepared.popular.items,
        prepared.calibration_sample,
        threads=2,
    )
    np.testing.assert_array_equal(background.model.user_factors, foreground.model.user_factors)
    np.testing.assert_array_equal(background.model.item_factors, foreground.model.item_factors)
    scored = np.flatnonzero(background.ready)
    assert scored.size > prepared.calibration_sample.size  # traffic users were added
    foreground.ensure(scored)
    np.testing.assert_array_equal(background.items[scored], foreground.items[scored])
    # ... and it is not simply the baseline: another seed, other lists.
    assert not np.array_equal(background.items[scored], baseline.items[scored])


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_yielding_work_runs_at_a_low_priority_and_so_do_the_threads_it_starts() -> None:
    mine = _nice()

    def nice_here_and_in_a_child() -> tuple[int, int]:
        child: list[int] = []
        started = threading.Thread(target=lambda: child.append(_nice()))
        started.start()
        started.join()
        return _nice(), child[0]

    # implicit's OpenMP team and the top-K pool are started by the yielding thread.
    assert in_background(nice_here_and_in_a_child, name="t", yielding=True).result() == (
        YIELDING_NICE,
        YIELDING_NICE,
    )
    assert in_background(_nice, name="t").result() == mine
    pending = Pending(_nice, name="t", yielding=True)
    seen: list[int] = []
    pending.then(lambda _value: seen.append(_nice()))
    assert pending.result() == YIELDING_NICE and seen == [YIELDING_NICE]
    assert _nice() == mine  # the caller's own priority is untouched
