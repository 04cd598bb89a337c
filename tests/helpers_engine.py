"""Shared test helpers for driving ``sim.engine.simulate`` directly with hand-built plans.

Nothing here samples implicitly: every function that draws numbers takes ``rng``.

- ``FixedController``: routing set once, never wakes up (``next_wakeup_s`` returns None).
- ``ScheduleController``: applies a fixed list of ``(t_s, candidate_threshold,
  mirror_threshold)`` changes at their times.
- ``poisson_times``: homogeneous Poisson arrival times (seconds).
- ``version``: a ``VersionPlan`` with exponential or lognormal service.
- ``make_plan``: an ``EnginePlan`` with defaults that keep everything on the baseline, no
  cache, no timeouts in practice, and no fallback.
- ``run_plan``: simulate a plan with seeded service / fault streams; returns the outcome.
- ``columns``: copies of the per-request record columns (for comparisons).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sim.engine import CachePlan, EngineOutcome, EnginePlan, VersionPlan
from sim.engine import simulate as engine_simulate
from sim.faults import FaultWindow
from sim.records import Records
from sim.router import Routing, stable_buckets
from sim.servers import ServiceTime

#: A timeout no test run ever reaches (seconds).
NEVER_S = 1.0e6

#: Every per-request record column, in a stable order.
RECORD_COLUMNS = (
    "version",
    "served_by",
    "cache",
    "result",
    "failure",
    "latency_ms",
    "wait_ms",
    "shadow",
    "shadow_result",
    "shadow_latency_ms",
)

#: The columns that describe what the user saw and when (shadow columns excluded).
USER_COLUMNS = ("version", "served_by", "cache", "result", "failure", "latency_ms", "wait_ms")


@dataclass
class FixedController:
    """Routing fixed at construction; never wakes up."""

    routing: Routing = field(default_factory=Routing)

    def next_wakeup_s(self, now_s: float) -> float | None:
        return None

    def tick(self, now_s: float, settled_until_s: float) -> None:
        return None


@dataclass
class ScheduleController:
    """Applies ``(t_s, candidate_threshold, mirror_threshold)`` changes in time order."""

    schedule: Sequence[tuple[float, int, int]]
    routing: Routing = field(default_factory=Routing)
    applied: list[tuple[float, int, int]] = field(default_factory=list)
    _next: int = 0

    def next_wakeup_s(self, now_s: float) -> float | None:
        if self._next >= len(self.schedule):
            return None
        return max(self.schedule[self._next][0], now_s)

    def tick(self, now_s: float, settled_until_s: float) -> None:
        while self._next < len(self.schedule) and self.schedule[self._next][0] <= now_s:
            _, cand, mirror = self.schedule[self._next]
            self.routing.candidate_threshold = cand
            self.routing.mirror_threshold = mirror
            self.applied.append((now_s, cand, mirror))
            self._next += 1


def poisson_times(rate_per_s: float, n: int, *, rng: np.random.Generator) -> np.ndarray:
    """``n`` arrival times (s) of a Poisson process with rate ``rate_per_s``, from time 0."""
    return np.cumsum(rng.exponential(1.0 / rate_per_s, n))


def version(
    name: str,
    *,
    mean_ms: float = 10.0,
    servers: int = 1,
    concurrency: int = 1,
    lognormal: tuple[float, float] | None = None,
) -> VersionPlan:
    """``servers`` replicas x ``concurrency`` slots; exponential service unless ``lognormal``."""
    if lognormal is not None:
        law = ServiceTime("lognormal", p50_ms=lognormal[0], p99_ms=lognormal[1])
    else:
        law = ServiceTime("exponential", mean_ms=mean_ms)
    return VersionPlan(name=name, service=law, replicas=servers, concurrency=concurrency)


def no_cache() -> CachePlan:
    return CachePlan(False, 0, NEVER_S, "versioned_keys", 0.001)


def make_plan(
    t_s: np.ndarray,
    *,
    versions: Sequence[VersionPlan],
    users: np.ndarray | None = None,
    n_users: int | None = None,
    salt: int = 12_345,
    timeout_s: float = NEVER_S,
    queue_limit: int = 0,
    fallback: Sequence[str] = (),
    fallback_latency_s: float = 0.002,
    cache: CachePlan | None = None,
    eligible: np.ndarray | None = None,
    faults: Sequence[FaultWindow] = (),
) -> EnginePlan:
    """An ``EnginePlan`` over arrivals ``t_s``; by default one user per request (no reuse)."""
    t_s = np.asarray(t_s, dtype=np.float64)
    n = int(t_s.shape[0])
    if users is None:
        users = np.arange(n, dtype=np.int32)
    users = np.asarray(users, dtype=np.int32)
    if n_users is None:
        n_users = int(users.max()) + 1 if n else 1
    fields: dict[str, object] = {
        "t_s": t_s,
        "user": users,
        "assign_bucket": stable_buckets(users, salt=salt),
        "mirror_bucket": stable_buckets(users, salt=salt + 1),
        "eligible": np.ones(n, dtype=bool) if eligible is None else np.asarray(eligible, bool),
        "n_users": n_users,
        "versions": tuple(versions),
        "baseline": 0,
        "candidate": 1 if len(versions) > 1 else 0,
        "timeout_s": timeout_s,
        "queue_limit": queue_limit,
        "fallback": tuple(fallback),
        "fallback_latency_s": fallback_latency_s,
        "cache": no_cache() if cache is None else cache,
        "duration_s": float(t_s[-1]) if n else 0.0,
        "faults": tuple(faults),
        # Sticky unit = user, one session per user, no memory of first assignments.  Set only
        # when the plan has these fields, so the helpers follow the engine as it grows.
        "session": users,
        "unit": users,
        "n_units": n_users,
        "sticky_memory": False,
    }
    known = {f.name for f in dataclasses.fields(EnginePlan)}
    return EnginePlan(**{k: v for k, v in fields.items() if k in known})  # type: ignore[arg-type]


def run_plan(
    plan: EnginePlan,
    controller: object | None = None,
    *,
    seed: int | np.random.SeedSequence,
) -> EngineOutcome:
    """Simulate ``plan`` with service and fault streams derived from ``seed``."""
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    service, faults = root.spawn(2)
    return engine_simulate(
        plan,
        controller if controller is not None else FixedController(),  # type: ignore[arg-type]
        Records(int(plan.t_s.shape[0])),
        rng_service=np.random.default_rng(service),
        rng_faults=np.random.default_rng(faults),
    )


def columns(records: Records, names: Sequence[str] = RECORD_COLUMNS) -> dict[str, np.ndarray]:
    """Copies of the named record columns."""
    return {name: getattr(records, name).copy() for name in names}
