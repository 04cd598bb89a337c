"""The autoscaler: HPA's rule by hand, load delay, stabilisation, bad bounds."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from lab.scenario import parse_scenario
from replay.errors import UserInputError
from sim.autoscaler import AutoscalerPlan, AutoscalerTrace, desired_replicas
from sim.engine import VersionPlan
from sim.servers import ServiceTime
from tests.helpers_engine import make_plan, run_plan
from tests.unit.lab.test_scenario import BASE

PLAN = AutoscalerPlan(
    target_utilisation=0.5,
    min_replicas=1,
    max_replicas=4,
    stabilisation_s=30.0,
    scale_up_delay_s=10.0,
    sync_s=5.0,
)


def test_hpa_rule_by_hand() -> None:
    assert desired_replicas(2, 0.9, PLAN) == 4  # ceil(2 x 0.9 / 0.5) = 4
    assert desired_replicas(2, 0.6, PLAN) == 3  # ceil(2.4)
    assert desired_replicas(2, 0.5, PLAN) == 2  # exactly on target: no change
    assert desired_replicas(3, 0.0, PLAN) == 1  # idle: down to the minimum
    assert desired_replicas(4, 3.0, PLAN) == 4  # capped at the maximum


def test_replica_seconds_by_hand() -> None:
    trace = AutoscalerTrace(timeline=[(0.0, 2), (10.0, 4), (30.0, 1)])
    assert trace.replica_seconds(60.0) == pytest.approx(2 * 10 + 4 * 20 + 1 * 30)
    assert trace.replica_seconds(20.0) == pytest.approx(2 * 10 + 4 * 10)


def test_new_replicas_are_ready_after_the_load_delay_and_kept_for_the_window() -> None:
    # One replica with one slot, 100 ms per request, 20 requests/s for 20 s (demand 2x the
    # capacity), then 1 request/s to 120 s.  The first sync (5 s) asks for more; they are
    # ready at 15 s.  Until 20 s four replicas are wanted (demand 0.5 of four at target 0.5),
    # so none is scaled in before the sync at 20 s has left the 30 s window: at 50 s.
    law = ServiceTime("empirical", samples_ms=(100.0,))
    version = VersionPlan("baseline", law, replicas=1, concurrency=1, autoscaler=PLAN)
    t_s = np.concatenate([np.arange(0.0, 20.0, 0.05), np.arange(20.0, 120.0, 1.0)])
    outcome = run_plan(make_plan(t_s, versions=[version], timeout_s=0.5), seed=4)
    timeline = outcome.autoscalers[0].timeline
    assert timeline[0] == (0.0, 1)
    assert timeline[1][0] == pytest.approx(15.0)
    assert max(n for _, n in timeline) == 4
    downs = [t for (t, n), (_, before) in zip(timeline[1:], timeline, strict=False) if n < before]
    assert downs and min(downs) == pytest.approx(50.0)
    assert timeline[-1][1] == 1


def _error(autoscaler: dict[str, object], replicas: int = 4) -> str:
    data = copy.deepcopy(BASE)
    data["serving"] = {"replicas": replicas, "autoscaler": autoscaler}
    with pytest.raises(UserInputError) as info:
        parse_scenario(data, source="s.toml")
    return str(info.value)


def test_autoscaler_bounds_must_hold_the_replicas() -> None:
    assert _error({"max_replicas": 2}) == (
        "s.toml: serving.autoscaler.max_replicas must be at least the replicas baseline "
        "starts with (4), got 2"
    )
    assert _error({"min_replicas": 6, "max_replicas": 8}) == (
        "s.toml: serving.autoscaler.min_replicas must be at most the replicas baseline "
        "starts with (4), got 6"
    )
    assert _error({"min_replicas": 5, "max_replicas": 3}) == (
        "s.toml: serving.autoscaler.min_replicas must be at most max_replicas (3), got 5"
    )
    assert _error({"max_replicas": 8, "target_utilisation": 0}) == (
        "s.toml: serving.autoscaler.target_utilisation must be in (0, 1], got 0"
    )
