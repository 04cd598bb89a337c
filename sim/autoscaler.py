"""A horizontal autoscaler of a version's replicas (after Kubernetes' HPA).

Every ``sync_s`` it reads the version's demand, ``u = (requests in service + waiting) /
(ready replicas x concurrency)`` averaged over ``SAMPLES`` instants of the period, and wants

    desired = ceil(ready x u / target)        clamped to [min_replicas, max_replicas]

Scaling up starts the missing replicas at once, but a new replica is ready (takes requests)
only ``scale_up_delay_s`` later (it loads the model).  Scaling down follows the largest
``desired`` of the last ``stabilisation_s`` (so a short lull does not drop replicas that are
needed again a moment later); removed replicas finish what they hold.  The replica count is
recorded at every change (``timeline``) for the summary and the cost.

On nodes of finite memory (``sim.memory``) each replica it starts asks for memory first
(``allocate``); one without room is killed out of memory at once and never becomes ready,
so the autoscaler is still short and starts another at its next sync.  A replica it removes
gives its memory back (``release``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from sim.servers import ServerPool

__all__ = ["SAMPLES", "AutoscalerPlan", "AutoscalerTrace", "desired_replicas", "run_autoscaler"]

#: Demand samples per sync period (their mean is the utilisation the rule reads).
SAMPLES = 5


@dataclass(frozen=True, slots=True)
class AutoscalerPlan:
    target_utilisation: float  # in (0, 1]
    min_replicas: int
    max_replicas: int
    stabilisation_s: float
    scale_up_delay_s: float
    sync_s: float


@dataclass(slots=True)
class AutoscalerTrace:
    """Ready replicas over time: ``(t_s, replicas)`` at the start and at every change."""

    timeline: list[tuple[float, int]] = field(default_factory=list)
    peak_desired: int = 0

    def replica_seconds(self, end_s: float) -> float:
        """Integral of the ready replicas over ``[0, end_s)``."""
        total = 0.0
        for (t, n), nxt in zip(self.timeline, [*self.timeline[1:], (end_s, 0)], strict=True):
            total += n * max(min(nxt[0], end_s) - t, 0.0)
        return total


def desired_replicas(ready: int, demand: float, plan: AutoscalerPlan) -> int:
    """HPA's rule: ``ceil(ready x utilisation / target)`` within the bounds."""
    want = math.ceil(ready * demand / plan.target_utilisation - 1e-9) if demand > 0 else 0
    return min(max(want, plan.min_replicas), plan.max_replicas)


def run_autoscaler(
    env: simpy.Environment,
    pool: ServerPool,
    replicas: int,
    concurrency: int,
    plan: AutoscalerPlan,
    until_s: float,
    trace: AutoscalerTrace,
    *,
    allocate: Callable[[], bool] | None = None,
    release: Callable[[], None] | None = None,
) -> Generator[simpy.Event, Any, None]:
    """The autoscaler's SimPy process for one version's pool (``replicas`` ready at start);
    ``allocate``/``release``: the nodes' memory for a replica it starts or removes."""
    ready = replicas
    starting = 0  # started, not ready yet
    # (t, desired) within the stabilisation window; the starting count is the first wish, so
    # nothing is scaled in before a whole window has shown fewer replicas will do.
    recent: deque[tuple[float, int]] = deque([(env.now, replicas)])
    trace.timeline.append((env.now, ready))

    def become_ready(_event: Any) -> None:
        nonlocal ready, starting
        starting -= 1
        ready += 1
        pool.set_capacity(ready * concurrency)
        trace.timeline.append((env.now, ready))

    step_s = plan.sync_s / SAMPLES
    while env.now + plan.sync_s <= until_s:
        # Demand averaged over the sync period (as HPA reads a metric averaged over its
        # window), not one instant's count.
        load = 0.0
        for _ in range(SAMPLES):
            yield env.timeout(step_s)
            load += (pool.busy + len(pool.waiting)) / max(ready * concurrency, 1)
        now = env.now
        demand = load / SAMPLES
        desired = desired_replicas(ready, demand, plan)
        trace.peak_desired = max(trace.peak_desired, desired)
        recent.append((now, desired))
        while recent[0][0] <= now - plan.stabilisation_s:
            recent.popleft()
        if desired > ready + starting:
            for _ in range(desired - ready - starting):
                if allocate is not None and not allocate():
                    continue  # killed out of memory as it started: never ready
                starting += 1
                env.timeout(plan.scale_up_delay_s).callbacks.append(become_ready)
            continue
        keep = max(d for _, d in recent)
        if keep < ready and starting == 0:
            if release is not None:
                for _ in range(ready - keep):
                    release()
            ready = keep
            pool.set_capacity(ready * concurrency)
            trace.timeline.append((now, ready))
