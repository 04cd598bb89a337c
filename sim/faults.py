"""Faults scheduled on a version's servers, the router or the cache during a run.

Each ``FaultWindow`` is switched on at ``start_s`` and off at ``end_s`` by a SimPy process of
its own (``FaultState.install``); while it is on it changes what the engine's servers,
router or cache do.  The kinds are the scenario's (``[[faults]]``):

    latency_spike  service times x ``factor``
    error_burst    each request fails at once with probability ``fraction``
    replica_crash  ``replicas`` of the version's replicas are down
    capacity_loss  only ``fraction`` of the version's capacity stays up
    misroute       a router bug: ``fraction`` of the units assigned to the candidate are
                   sent to the baseline (what a sample-ratio-mismatch check must catch)
    cache_loss     a cache node fails: ``fraction`` of the entries and of the capacity are
                   gone until it comes back, empty
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from sim.cache import LruCache
from sim.fault_kinds import FAULT_KINDS, FaultKind
from sim.router import BUCKETS, Routing
from sim.servers import ServerPool, ServiceSampler

if TYPE_CHECKING:
    from sim.engine import VersionPlan

__all__ = ["FAULT_KINDS", "FaultKind", "FaultState", "FaultWindow"]


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """A fault of ``kind`` on version ``version`` during ``[start_s, end_s)``."""

    version: int
    kind: FaultKind
    start_s: float
    end_s: float
    factor: float = 1.0
    fraction: float = 0.0
    replicas: int = 0


class FaultState:
    """Scheduled faults: latency multipliers, error bursts and capacity loss per version."""

    def __init__(
        self,
        faults: tuple[FaultWindow, ...],
        servers: list[ServerPool],
        versions: Sequence[VersionPlan],
        samplers: list[list[ServiceSampler]],
        rng: np.random.Generator,
        routing: Routing,
        cache: LruCache | None,
    ) -> None:
        self.faults = faults
        self.routing = routing
        self.cache = cache
        self.servers = servers
        self.versions = versions
        self.samplers = samplers
        self.rng = rng
        self.active = bool(faults)
        self.error_fraction = [0.0] * len(versions)
        # One uniform stream per (version, shadow or not): faults on one never shift another.
        self._streams = rng.spawn(2 * len(versions))
        self._uniforms: list[list[float]] = [[] for _ in range(2 * len(versions))]

    def error(self, version: int, shadow: bool) -> bool:
        fraction = self.error_fraction[version]
        if fraction <= 0.0:
            return False
        slot = 2 * version + shadow
        buffer = self._uniforms[slot]
        if not buffer:
            buffer.extend(self._streams[slot].random(4096).tolist())
        return buffer.pop() < fraction

    def install(self, env: simpy.Environment) -> None:
        for fault in self.faults:
            env.process(self._window(env, fault))

    def _window(
        self, env: simpy.Environment, fault: FaultWindow
    ) -> Generator[simpy.Event, Any, None]:
        if fault.start_s > env.now:
            yield env.timeout(fault.start_s - env.now)
        self._apply(fault, on=True)
        yield env.timeout(max(fault.end_s - env.now, 0.0))
        self._apply(fault, on=False)

    def _apply(self, fault: FaultWindow, *, on: bool) -> None:
        v = fault.version
        if fault.kind == "latency_spike":
            for group in self.samplers:
                group[v].scale = fault.factor if on else 1.0
        elif fault.kind == "error_burst":
            self.error_fraction[v] = fault.fraction if on else 0.0
        elif fault.kind in ("capacity_loss", "replica_crash"):
            plan = self.versions[v]
            if fault.kind == "replica_crash":
                left = max(plan.replicas - fault.replicas, 0) * plan.concurrency
            else:
                left = max(0, round(plan.capacity * fault.fraction))
            # Capacity 0 is a version with every replica down: requests queue until timeout.
            self.servers[v].set_capacity(left if on else plan.capacity)
        elif fault.kind == "misroute":
            self.routing.set_misroute(round(fault.fraction * BUCKETS) if on else 0)
        elif fault.kind == "cache_loss" and self.cache is not None:
            if on:
                self.cache.lose_share(fault.fraction)
            else:
                self.cache.restore_capacity()
