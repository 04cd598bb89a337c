"""A version's serving path as stages in tandem (retrieval -> features -> ranking -> ...).

Each stage is its own pool of servers (``replicas`` x ``concurrency``) with its own latency
law and timeout.  A request passes the stages in order; the time it spends in stage ``k`` is
its sojourn there (queue wait plus service).  With exponential service and Poisson arrivals
the path is a Jackson tandem of M/M/c stations: the mean end-to-end sojourn is the sum of
each station's M/M/c mean sojourn (``tests/validation``).

Degradation when a stage's *own* timeout passes (the request's overall timeout is a plain
timeout whatever the stage says):

    FAIL             the attempt times out; the fallback chain runs
    SKIP             the stage's work is left out; the request goes on to the next stage
    RETRIEVAL_ORDER  the request is answered at once with the retrieval-order list

Either degraded answer shows the *retrieval-order list*: the version's own top-K items
re-ordered by popularity (most popular first), i.e. the candidates without the model's
ordering; that is the list the users' click model sees (``sim.monitor``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim.servers import ServiceTime

__all__ = [
    "DEGRADE_CODES",
    "FAIL",
    "RETRIEVAL_ORDER",
    "SKIP",
    "StageCounters",
    "StagePlan",
    "retrieval_order",
]

FAIL, SKIP, RETRIEVAL_ORDER = 0, 1, 2
DEGRADE_CODES = {"fail": FAIL, "skip": SKIP, "retrieval_order": RETRIEVAL_ORDER}


@dataclass(frozen=True, slots=True)
class StagePlan:
    name: str
    service: ServiceTime
    replicas: int
    concurrency: int
    timeout_s: float = math.inf  # the stage's own bound on queue + service
    degrade: int = FAIL

    @property
    def capacity(self) -> int:
        return self.replicas * self.concurrency


@dataclass(slots=True)
class StageCounters:
    """What one stage of one version did with users' requests, or with mirrored (shadow)
    copies: the engine keeps one set of counters for each, never mixed."""

    name: str
    entered: int = 0
    completed: int = 0
    timeouts: int = 0  # the stage's own timeout or the request's, whichever came first
    degraded: int = 0  # of those timeouts, answered degraded instead of failing
    sojourn_ms: list[float] = field(default_factory=list)  # completed: queue + service

    def as_dict(self) -> dict[str, float | int | None]:
        done = np.asarray(self.sojourn_ms)
        if done.size:
            p50, p95, p99 = np.percentile(done, [50, 95, 99], method="inverted_cdf")
            mean: float | None = float(done.mean())
        else:
            p50 = p95 = p99 = mean = None
        return {
            "entered": self.entered,
            "completed": self.completed,
            "timeouts": self.timeouts,
            "degraded": self.degraded,
            "sojourn_ms_mean": mean,
            "sojourn_ms_p50": None if p50 is None else float(p50),
            "sojourn_ms_p95": None if p95 is None else float(p95),
            "sojourn_ms_p99": None if p99 is None else float(p99),
        }


def retrieval_order(items: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """``[n, K]`` column order that sorts each row of ``items`` by popularity, most popular
    first (ties keep the model's order; empty slots, ``-1``, go last)."""
    pop = np.where(items >= 0, popularity[np.maximum(items, 0)], -1)
    return np.argsort(-pop, axis=1, kind="stable")
