"""Single flight (``cache.coalesce``): at most one model call per key in flight (Hypothesis).

A key is ``(version, user)``.  The request that misses first leads the model call; misses
for the same key while it is in flight wait for it and get its answer (or its failure, then
walk their own fallback chain).  Checked from the records alone, over random arrival
patterns, users, service laws, capacities, timeouts, cache sizes and one-pool or staged
paths, with no fallback chain, so a leader's model call spans exactly
``[arrival, arrival + latency]``:

- every arrival ends (nothing pending);
- per key, the leaders' calls never overlap;
- every coalesced request arrived while its key's call was in flight and ended with it,
  with the same result and list.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.engine import CachePlan, EngineOutcome, VersionPlan
from sim.records import MISS, PENDING, SERVED
from sim.servers import ServiceTime
from sim.stages import RETRIEVAL_ORDER, SKIP, StagePlan
from tests.helpers_engine import make_plan, run_plan

FAST = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TOLERANCE_MS = 1e-3  # latencies are float32 milliseconds


def _version(mean_ms: float, servers: int, staged: bool) -> VersionPlan:
    law = ServiceTime("exponential", mean_ms=mean_ms)
    stages: tuple[StagePlan, ...] = ()
    if staged:
        stages = (
            StagePlan("retrieval", ServiceTime("exponential", mean_ms=mean_ms / 4), servers, 1),
            StagePlan("ranking", law, servers, 1, timeout_s=3 * mean_ms / 1000, degrade=SKIP),
            StagePlan(
                "reranking",
                ServiceTime("exponential", mean_ms=mean_ms / 4),
                1,
                1,
                timeout_s=mean_ms / 1000,
                degrade=RETRIEVAL_ORDER,
            ),
        )
    return VersionPlan("baseline", law, replicas=servers, concurrency=1, stages=stages)


@st.composite
def storms(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, VersionPlan, float, CachePlan]:
    n = draw(st.integers(1, 150))
    gaps_ms = draw(st.lists(st.floats(0.0, 20.0), min_size=n, max_size=n))
    t_s = np.cumsum(np.asarray(gaps_ms)) / 1000.0
    users = np.asarray(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), np.int32)
    version = _version(
        draw(st.floats(1.0, 40.0)), draw(st.integers(1, 3)), staged=draw(st.booleans())
    )
    timeout_s = draw(st.floats(0.005, 0.2))
    cache = CachePlan(
        True,
        draw(st.integers(0, 6)),  # capacity 0: nothing is kept, every request misses
        draw(st.floats(0.001, 0.5)),
        "versioned_keys",
        0.001,
        coalesce=True,
    )
    return t_s, users, version, timeout_s, cache


def _run(
    t_s: np.ndarray, users: np.ndarray, version: VersionPlan, timeout_s: float, cache: CachePlan
) -> EngineOutcome:
    plan = make_plan(
        t_s, versions=[version], users=users, n_users=5, timeout_s=timeout_s, cache=cache
    )
    return run_plan(plan, seed=11)


@FAST
@given(storms())
def test_at_most_one_model_call_per_key_in_flight(
    storm: tuple[np.ndarray, np.ndarray, VersionPlan, float, CachePlan],
) -> None:
    t_s, users, version, timeout_s, cache = storm
    outcome = _run(t_s, users, version, timeout_s, cache)
    rec = outcome.records
    assert (rec.result != PENDING).all()
    start_ms = t_s * 1000.0
    end_ms = start_ms + rec.latency_ms.astype(np.float64)
    leaders: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i in np.flatnonzero((rec.cache == MISS) & ~rec.coalesced):
        leaders[(int(rec.version[i]), int(users[i]))].append(int(i))
    for calls in leaders.values():  # in arrival order
        for before, after in itertools.pairwise(calls):
            assert start_ms[after] >= end_ms[before] - TOLERANCE_MS, (
                f"calls {before} and {after} for one key overlap"
            )
    coalesced = np.flatnonzero(rec.coalesced)
    assert outcome.coalesced == coalesced.size
    for j in coalesced:
        key = (int(rec.version[j]), int(users[j]))
        inside = [
            i
            for i in leaders[key]
            if start_ms[i] <= start_ms[j] + TOLERANCE_MS
            and math.isclose(end_ms[i], end_ms[j], abs_tol=TOLERANCE_MS)
        ]
        assert inside, f"request {j} coalesced onto no call in flight for its key"
        leader = inside[-1]
        assert rec.cache[j] == MISS
        assert rec.result[j] == rec.result[leader]
        assert rec.served_by[j] == rec.served_by[leader]
        assert rec.degraded[j] == rec.degraded[leader]


def test_a_stampede_makes_one_call_with_single_flight_and_one_per_request_without() -> None:
    # Ten simultaneous requests of one user on an empty cache.
    t_s = np.zeros(10)
    users = np.zeros(10, np.int32)
    version = _version(10.0, 2, staged=False)
    on = CachePlan(True, 10, 60.0, "versioned_keys", 0.001, coalesce=True)
    off = CachePlan(True, 10, 60.0, "versioned_keys", 0.001, coalesce=False)
    with_flight = _run(t_s, users, version, 1.0, on).records
    without = _run(t_s, users, version, 1.0, off).records
    assert int((~with_flight.coalesced).sum()) == 1
    assert (with_flight.result == SERVED).all()
    assert np.unique(with_flight.latency_ms).size == 1  # all answered when the one call ends
    assert int(without.coalesced.sum()) == 0
    assert (without.cache == MISS).all()  # ten model calls, queued on two servers
    assert without.latency_ms.max() > with_flight.latency_ms.max()


def test_waiters_of_a_failed_call_walk_their_own_fallback_chain() -> None:
    t_s = np.array([0.0, 0.001, 0.002])
    users = np.zeros(3, np.int32)
    slow = VersionPlan("baseline", ServiceTime("empirical", samples_ms=(50.0,)), 1, 1)
    cache = CachePlan(True, 10, 60.0, "versioned_keys", 0.001, coalesce=True)
    plan = make_plan(
        t_s, versions=[slow], users=users, n_users=1, timeout_s=0.010, cache=cache,
        fallback=("popular",), fallback_latency_s=0.002,
    )  # fmt: skip
    rec = run_plan(plan, seed=3).records
    assert rec.coalesced.tolist() == [False, True, True]
    # The call times out at 10 ms; every request falls back to the popular list then.
    assert rec.latency_ms.tolist() == [12.0, 11.0, 10.0]
