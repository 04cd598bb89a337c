"""The cache after a rollback: no list of the rolled-back version is shown to anyone else.

Regression tests for what the rollout invariants (``tests/property/test_rollout_invariants``,
property g) found in ``sim/engine.py``; each runs one user's few requests through the
engine with constant service times, so the trace is exact:

- the ``stale_cache`` fallback served any cached list of the user, including one the
  rolled-back candidate had stored under its versioned key;
- under ``flush_on_change`` a candidate request in flight at the rollback finished after
  the flush and stored its list under the user's key, where the user's next (baseline)
  request found it;
- under ``flush_on_change`` and ``ttl_only`` a unit draining on the candidate stored its
  lists under the user's key, which the user's baseline requests found after the drain;
- the same across a promotion's flush: a baseline request in flight stored its list under
  the user's key, and the user's first request on the promoted candidate was shown it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from sim.engine import CachePlan, VersionPlan
from sim.records import HIT, MISS, POPULAR, STALE
from sim.router import BUCKETS, Routing
from sim.servers import ServiceTime
from tests.helpers_engine import make_plan, run_plan

BASELINE, CANDIDATE = 0, 1


def constant(name: str, service_ms: float) -> VersionPlan:
    """A version whose every request takes exactly ``service_ms``."""
    return VersionPlan(
        name=name,
        service=ServiceTime("empirical", samples_ms=(service_ms,)),
        replicas=1,
        concurrency=8,
    )


@dataclass
class RollbackAt:
    """Everyone on the candidate until ``at_s``, then a rollback (optionally draining);
    ``promote``: everyone on the baseline until ``at_s``, then on the candidate."""

    at_s: float
    drain_until_s: float | None = None
    promote: bool = False
    routing: Routing = field(default_factory=Routing)
    done: bool = False

    def __post_init__(self) -> None:
        self.routing.candidate_threshold = 0 if self.promote else BUCKETS

    def next_wakeup_s(self, now_s: float) -> float | None:
        return None if self.done else self.at_s

    def tick(self, now_s: float, settled_until_s: float) -> None:
        self.done = True
        self.routing.candidate_threshold = BUCKETS if self.promote else 0
        if self.drain_until_s is not None:
            self.routing.drain(CANDIDATE, np.array([self.drain_until_s]))


def run(
    t_s: list[float],
    invalidation: str,
    controller: RollbackAt,
    *,
    baseline_ms: float = 5.0,
    candidate_ms: float = 5.0,
    ttl_s: float = math.inf,
    timeout_s: float = 1.0,
    fallback: tuple[str, ...] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """(served_by, cache code) of each request of user 0."""
    plan = make_plan(
        np.asarray(t_s),
        users=np.zeros(len(t_s), np.int32),
        n_users=1,
        versions=[constant("baseline", baseline_ms), constant("candidate", candidate_ms)],
        cache=CachePlan(True, 100, ttl_s, invalidation, 0.001),
        timeout_s=timeout_s,
        fallback=fallback,
    )
    records = run_plan(plan, controller, seed=1).records
    return records.served_by.astype(int), records.cache.astype(int)


def test_the_stale_cache_fallback_never_serves_a_rolled_back_version() -> None:
    # 0.5: served by the candidate, cached under its versioned key.  Rollback at 1.0.
    # 2.0: the baseline times out (100 ms > 10 ms) and the chain reaches stale_cache, where
    # the only list cached for the user is the rolled-back candidate's.
    served_by, cache = run(
        [0.5, 2.0],
        "versioned_keys",
        RollbackAt(1.0),
        baseline_ms=100.0,
        timeout_s=0.010,
        fallback=("stale_cache", "popular"),
    )
    assert served_by[0] == CANDIDATE
    assert served_by[1] == POPULAR  # before the fix: CANDIDATE (a stale serve)
    assert cache[1] == MISS


@pytest.mark.parametrize("invalidation", ["flush_on_change", "ttl_only"])
def test_a_candidate_request_finishing_after_the_rollback_is_not_cached(invalidation: str) -> None:
    # 0.95: on the candidate, 100 ms of service, so it ends at 1.05, after the rollback (and,
    # with flush_on_change, the flush) at 1.0.  1.92 and 2.5: the same user, on the baseline,
    # after rollback + TTL (1.9), when ttl_only must not show the candidate's list either.
    served_by, cache = run(
        [0.95, 1.92, 2.5], invalidation, RollbackAt(1.0), candidate_ms=100.0, ttl_s=0.9
    )
    assert served_by[0] == CANDIDATE
    # Before the fix the candidate's list, stored at 1.05, was a (stale) hit at 1.92.
    assert served_by[1] == BASELINE and cache[1] == MISS
    assert served_by[2] == BASELINE and cache[2] == HIT


@pytest.mark.parametrize("invalidation", ["flush_on_change", "ttl_only"])
def test_a_drained_session_does_not_leave_its_list_for_the_user(invalidation: str) -> None:
    # Rollback at 1.0 with the unit draining until 2.0: the request at 1.5 stays on the
    # candidate (allowed; the list cached at 0.5 has expired, so it is served again).  The
    # user's request after the drain, at 2.2 (after rollback + TTL), is the baseline's: it
    # must not be shown the list the drained request would have cached at 1.505.
    served_by, cache = run(
        [0.5, 1.5, 2.2], invalidation, RollbackAt(1.0, drain_until_s=2.0), ttl_s=0.8
    )
    assert list(served_by[:2]) == [CANDIDATE, CANDIDATE]
    assert served_by[2] == BASELINE  # before the fix: CANDIDATE, a stale hit
    assert cache[2] != STALE


def test_a_baseline_request_in_flight_across_a_promotion_flush_is_not_cached() -> None:
    # 0.95: on the baseline, 100 ms, ending at 1.05 after the promotion's flush at 1.0.
    # 2.0: the same user, now on the candidate: a miss, served by the candidate.
    served_by, cache = run(
        [0.95, 2.0], "flush_on_change", RollbackAt(1.0, promote=True), baseline_ms=100.0
    )
    assert served_by[0] == BASELINE
    assert served_by[1] == CANDIDATE and cache[1] == MISS  # before the fix: BASELINE, stale
