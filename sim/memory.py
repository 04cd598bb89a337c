"""Replicas on nodes with finite memory: placement, out-of-memory kills and restarts.

The baseline's and the candidate's replicas are placed on ``nodes`` round-robin (the
baseline's first, then the candidate's, as a rollout starts the new stack beside the old
one); each holds its version's footprint.  Both stacks exist during the overlap (a canary,
blue-green's preview).  A replica that starts on a node without room for it is killed by the
out-of-memory killer at once: its version loses that replica's capacity (``concurrency``
slots) and the replica restarts ``restart_delay_s`` later, to be killed again while the node
is still full (a crash loop, at a constant delay).  When a stack leaves (the candidate's on
rollback, the old baseline's once a promotion is final) its memory is freed and the next
restart on that node fits.

An autoscaled version (``scaled``) owns its replica count: its autoscaler sets the pool's
capacity and asks the nodes for memory each time it starts a replica (:meth:`Nodes.allocate`,
placed round-robin after the replicas placed so far) and gives it back when it removes one
(:meth:`Nodes.release`).  A replica the nodes have no room for is killed out of memory as it
starts and never becomes ready; the autoscaler, still short of replicas, starts another at
its next sync (its own retry instead of a restart loop).  Either way a node's memory never
exceeds its capacity: a replica that does not fit is killed before it holds any.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import simpy

from sim.servers import ServerPool

__all__ = ["MemoryPlan", "MemoryTrace", "Nodes"]


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    nodes: int
    node_bytes: float
    restart_delay_s: float
    footprint_bytes: tuple[float, float]  # baseline, candidate (per replica)


@dataclass(slots=True)
class MemoryTrace:
    """Per version (baseline, candidate): OOM kills, and replica-seconds lost to them."""

    oom_kills: list[int] = field(default_factory=lambda: [0, 0])
    down_seconds: list[float] = field(default_factory=lambda: [0.0, 0.0])
    first_kill_s: float | None = None
    node_peak_bytes: list[float] = field(default_factory=list)


class Nodes:
    """The nodes, the replicas on them, and what each version's pool may use."""

    def __init__(
        self,
        env: simpy.Environment,
        plan: MemoryPlan,
        pools: list[ServerPool],
        replicas: tuple[int, int],
        concurrency: tuple[int, int],
        trace: MemoryTrace,
        until_s: float,
        scaled: tuple[bool, bool] = (False, False),
    ) -> None:
        self.env = env
        self.scaled = scaled  # per version: its autoscaler sets the pool's capacity
        self.until_s = until_s  # no restart is scheduled past it (the run must end)
        self.plan = plan
        self.pools = pools
        self.concurrency = concurrency
        self.trace = trace
        self.used = [0.0] * plan.nodes
        trace.node_peak_bytes = [0.0] * plan.nodes
        self.deployed = [True, True]
        self.running = [0, 0]
        self.up: list[set[int]] = [set(), set()]  # replicas running, per version
        self.down_since: list[dict[int, float]] = [{}, {}]  # replica -> killed at
        self.node_of: list[list[int]] = []
        slot = 0
        for v in (0, 1):
            self.node_of.append([(slot + k) % plan.nodes for k in range(replicas[v])])
            slot += replicas[v]
        self.next_slot = slot  # where the next replica an autoscaler starts is placed
        for v in (0, 1):
            for k in range(replicas[v]):
                self._start(v, k)

    def _fits(self, v: int, k: int) -> bool:
        """Hold replica ``k`` of ``v``'s memory on its node if it fits (peak recorded)."""
        node = self.node_of[v][k]
        need = self.plan.footprint_bytes[v]
        if self.used[node] + need > self.plan.node_bytes:
            return False
        self.used[node] += need
        self.trace.node_peak_bytes[node] = max(self.trace.node_peak_bytes[node], self.used[node])
        return True

    def _record_kill(self, v: int) -> None:
        trace = self.trace
        trace.oom_kills[v] += 1
        if trace.first_kill_s is None:
            trace.first_kill_s = self.env.now

    def _start(self, v: int, k: int) -> None:
        if self.scaled[v]:
            # The autoscaler's replicas at the start: one without room is killed and left
            # to the autoscaler (it counts only those that started, see ``started``).
            if self._fits(v, k):
                self.up[v].add(k)
            else:
                self._record_kill(v)
            return
        if not self._fits(v, k):
            self._kill(v, k)
            return
        killed_at = self.down_since[v].pop(k, None)
        if killed_at is not None:
            self.trace.down_seconds[v] += self.env.now - killed_at
        self.running[v] += 1
        self.up[v].add(k)
        self.pools[v].set_capacity(self.running[v] * self.concurrency[v])

    def started(self, v: int) -> int:
        """Replicas of ``v`` holding memory now (an autoscaler's starting count)."""
        return len(self.up[v])

    def allocate(self, v: int) -> bool:
        """An autoscaler starts a replica of ``v``: placed on the next node round-robin; True
        when it fits (it holds its memory from now on), False when it is killed out of memory
        at once (counted) or ``v``'s stack has left (nothing happens)."""
        if not self.deployed[v]:
            return False
        k = len(self.node_of[v])
        self.node_of[v].append(self.next_slot % self.plan.nodes)
        self.next_slot += 1
        if self._fits(v, k):
            self.up[v].add(k)
            return True
        self._record_kill(v)
        return False

    def release(self, v: int) -> None:
        """An autoscaler removes a replica of ``v``: the latest started gives back its memory."""
        if not self.up[v]:
            return
        k = max(self.up[v])
        self.up[v].discard(k)
        node = self.node_of[v][k]
        self.used[node] = max(self.used[node] - self.plan.footprint_bytes[v], 0.0)

    def _kill(self, v: int, k: int) -> None:
        self._record_kill(v)
        self.down_since[v].setdefault(k, self.env.now)
        self.pools[v].set_capacity(self.running[v] * self.concurrency[v])
        if self.env.now + self.plan.restart_delay_s <= self.until_s:
            self.env.timeout(self.plan.restart_delay_s).callbacks.append(
                lambda _event: self._restart(v, k)
            )

    def _restart(self, v: int, k: int) -> None:
        if self.deployed[v] and k in self.down_since[v]:
            self._start(v, k)

    def retire(self, v: int) -> None:
        """Version ``v``'s stack leaves: its memory is freed (its pool keeps serving what is
        routed to it: the engine no longer routes new requests there)."""
        if not self.deployed[v]:
            return
        self.deployed[v] = False
        now = self.env.now
        for killed_at in self.down_since[v].values():
            self.trace.down_seconds[v] += now - killed_at
        self.down_since[v].clear()
        for k in self.up[v]:
            node = self.node_of[v][k]
            self.used[node] = max(self.used[node] - self.plan.footprint_bytes[v], 0.0)
        self.up[v].clear()

    def settle(self) -> None:
        """At the end of the run: replicas still down count until now."""
        now = self.env.now
        for v in (0, 1):
            for killed_at in self.down_since[v].values():
                self.trace.down_seconds[v] += now - killed_at
            self.down_since[v] = {k: now for k in self.down_since[v]}
