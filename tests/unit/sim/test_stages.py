"""Staged serving paths in the engine: timing, degradation and what a degraded answer shows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.engine import VersionPlan
from sim.records import DROPPED, FALLBACK, NO_FAILURE, POPULAR, SERVED, TIMEOUT
from sim.servers import ServiceTime
from sim.stages import FAIL, RETRIEVAL_ORDER, SKIP, StagePlan, retrieval_order
from tests.helpers_engine import make_plan, run_plan


def _fixed(ms: float) -> ServiceTime:
    return ServiceTime("empirical", samples_ms=(ms,))


def _path(*stages: tuple[float, float, int]) -> VersionPlan:
    """Stages of fixed service time ``(ms, own timeout ms or inf, degrade)``."""
    plans = tuple(
        StagePlan(f"s{k}", _fixed(ms), replicas=1, concurrency=4, timeout_s=t / 1000.0, degrade=d)
        for k, (ms, t, d) in enumerate(stages)
    )
    return VersionPlan("baseline", _fixed(1.0), replicas=1, concurrency=1, stages=plans)


def _one_request(version: VersionPlan, timeout_s: float = 1.0, fallback: tuple[str, ...] = ()):
    plan = make_plan(np.array([0.0]), versions=[version], timeout_s=timeout_s, fallback=fallback)
    return run_plan(plan, seed=1)


def test_a_request_passes_every_stage_in_turn() -> None:
    out = _one_request(_path((5, math.inf, FAIL), (7, math.inf, FAIL), (3, math.inf, FAIL)))
    rec = out.records
    assert rec.result[0] == SERVED and rec.failure[0] == NO_FAILURE
    assert rec.latency_ms[0] == pytest.approx(15.0, abs=1e-3)
    assert rec.degraded[0] == -1
    assert [c.completed for c in out.stages[0]] == [1, 1, 1]
    assert [round(c.sojourn_ms[0], 6) for c in out.stages[0]] == [5.0, 7.0, 3.0]


def test_skip_leaves_the_slow_stage_out_and_goes_on() -> None:
    out = _one_request(_path((5, math.inf, FAIL), (50, 20, SKIP), (5, math.inf, FAIL)))
    rec = out.records
    assert rec.result[0] == SERVED
    assert rec.latency_ms[0] == pytest.approx(30.0, abs=1e-3)  # 5 + 20 (gave up) + 5
    assert rec.degraded[0] == 1
    ranking = out.stages[0][1]
    assert (ranking.timeouts, ranking.degraded, ranking.completed) == (1, 1, 0)
    assert out.stages[0][2].completed == 1


def test_retrieval_order_answers_at_once() -> None:
    out = _one_request(_path((5, math.inf, FAIL), (50, 20, RETRIEVAL_ORDER), (5, math.inf, FAIL)))
    rec = out.records
    assert rec.result[0] == SERVED
    assert rec.latency_ms[0] == pytest.approx(25.0, abs=1e-3)
    assert rec.degraded[0] == 1
    assert out.stages[0][2].entered == 0


def test_a_stage_that_may_not_degrade_times_the_request_out() -> None:
    out = _one_request(_path((5, math.inf, FAIL), (50, 20, FAIL)), fallback=("popular",))
    rec = out.records
    assert rec.failure[0] == TIMEOUT and rec.result[0] == FALLBACK
    assert rec.served_by[0] == POPULAR and rec.degraded[0] == -1


def test_the_overall_timeout_is_never_degraded() -> None:
    # The stage's own timeout (20 ms after it starts at 5 ms) would pass at 25 ms, after
    # the request's own 22 ms: a plain timeout, whatever the stage says.
    out = _one_request(_path((5, math.inf, FAIL), (50, 20, SKIP)), timeout_s=0.022)
    rec = out.records
    assert rec.failure[0] == TIMEOUT and rec.result[0] == DROPPED
    assert rec.latency_ms[0] == pytest.approx(22.0, abs=1e-3)
    assert out.stages[0][1].degraded == 0


def test_waiting_and_late_requests_degrade_at_their_stage_deadline() -> None:
    # One slot in the second stage (9 ms of service, own timeout 10 ms): the first request
    # makes it; the second is let in at 10 ms and would end at 19 ms, after its 11 ms stage
    # deadline (late); the third is still waiting at 11 ms (withdrawn from the queue).
    stage0 = StagePlan("a", _fixed(1.0), 1, 4)
    stage1 = StagePlan("b", _fixed(9.0), 1, 1, timeout_s=0.010, degrade=SKIP)
    version = VersionPlan("baseline", _fixed(1.0), 1, 1, stages=(stage0, stage1))
    plan = make_plan(np.zeros(3), versions=[version], timeout_s=1.0)
    out = run_plan(plan, seed=2)
    rec = out.records
    assert list(rec.result) == [SERVED] * 3
    assert list(rec.degraded) == [-1, 1, 1]
    assert rec.latency_ms.tolist() == pytest.approx([10.0, 11.0, 11.0], abs=1e-3)
    assert (out.stages[0][1].timeouts, out.stages[0][1].degraded) == (2, 2)


def test_retrieval_order_sorts_by_popularity_and_keeps_empty_slots_last() -> None:
    popularity = np.array([5, 50, 1, 20])
    items = np.array([[0, 1, 2, 3], [2, -1, 3, 0]])
    order = retrieval_order(items, popularity)
    assert np.take_along_axis(items, order, axis=1).tolist() == [[1, 3, 0, 2], [3, 0, 2, -1]]
