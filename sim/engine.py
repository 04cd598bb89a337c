"""The discrete-event engine: the only module that uses SimPy.

Per request the engine does as little as possible (DESIGN section 2):

* arrivals come from one generator process; when nothing else is due before the next
  arrival, the clock moves straight to it (no event at all), otherwise the process sleeps
  until then; routing is one comparison of a precomputed bucket with the current threshold;
* a cache hit is handled inline in that loop — no process, no event;
* a miss becomes a request on the version's servers (``sim.servers.ServerPool``, replicas x
  concurrency, admitting exactly as ``simpy.Resource`` does, without a request and a release
  event per request).  It is driven by callbacks rather than a process per request: a
  request let in schedules one timeout for its service time; a queued one also arms a
  deadline timer that withdraws it if the client's timeout passes first (the server never
  works on an abandoned request);
* a request whose service would end after the client's deadline keeps the server busy for
  the whole service time (the work is wasted) while the client falls back at the deadline.

Fallback chain (``serving.fallback``): ``baseline`` re-sends the request to the baseline's
servers with a fresh timeout, ``stale_cache`` serves any cached list for the user whatever its
age, of a version still in service, ``popular`` serves the popularity list; when the chain is
exhausted the request is dropped.  Every arrival ends as exactly one of served / fallback /
dropped.

A version is *in service* while new requests may be routed to it: production, and the
candidate while it holds buckets.  A rolled-back version is out of service: its lists are
never served from the cache again except to units draining on it, and never stored under a
user's key (``flush_on_change``, ``ttl_only``), where the user's next request on another
version would find it.  Under ``flush_on_change`` a list is also kept only if its unit is
still routed to its version when it is served (a request in flight across a flush).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import numpy as np
import simpy

from sim.autoscaler import AutoscalerPlan, AutoscalerTrace, run_autoscaler
from sim.cache import LruCache
from sim.faults import FaultState, FaultWindow
from sim.memory import MemoryPlan, MemoryTrace, Nodes
from sim.records import (
    ABSENT,
    DROPPED,
    FALLBACK,
    HIT,
    MISS,
    NO_FAILURE,
    NOTHING,
    POPULAR,
    QUEUE_FULL,
    SERVED,
    SERVER_ERROR,
    STALE,
    TIMEOUT,
    Records,
)
from sim.router import Routing, route
from sim.servers import ServerPool, ServiceSampler, ServiceTime
from sim.stages import FAIL, SKIP, StageCounters, StagePlan

__all__ = [
    "Attempt",
    "CachePlan",
    "Controller",
    "EnginePlan",
    "Presence",
    "VersionPlan",
    "simulate",
]

_CHUNK = 65_536


@dataclass(frozen=True, slots=True)
class VersionPlan:
    name: str
    service: ServiceTime
    replicas: int
    concurrency: int
    cold_factor: float = 1.0
    cold_length_s: float = 0.0
    # A serving path of stages in tandem (``sim.stages``); empty: one pool as above.
    stages: tuple[StagePlan, ...] = ()
    autoscaler: AutoscalerPlan | None = None  # None: a fixed number of replicas

    @property
    def capacity(self) -> int:
        return self.replicas * self.concurrency


@dataclass(frozen=True, slots=True)
class CachePlan:
    enabled: bool
    capacity: int
    ttl_s: float
    invalidation: str  # versioned_keys | flush_on_change | ttl_only
    hit_latency_s: float
    coalesce: bool = False  # single flight: one model call per (version, user) in flight


@dataclass(frozen=True, slots=True)
class EnginePlan:
    t_s: np.ndarray  # float64 [n], sorted
    user: np.ndarray  # int32 [n]
    assign_bucket: np.ndarray  # int32 [n], bucket of the sticky unit for assignment
    mirror_bucket: np.ndarray  # int32 [n], bucket for shadow traffic (independent salt)
    eligible: np.ndarray  # bool [n], targeting: may this request see the candidate?
    session: np.ndarray  # int32 [n], session of each request (drain on rollback)
    unit: np.ndarray  # int32 [n], the sticky unit (user or session) of each request
    n_units: int
    sticky_memory: bool  # remember each unit's first assignment (weights that also go down)
    n_users: int
    versions: tuple[VersionPlan, ...]
    baseline: int
    candidate: int
    timeout_s: float
    queue_limit: int
    fallback: tuple[str, ...]
    fallback_latency_s: float
    cache: CachePlan
    duration_s: float
    faults: tuple[FaultWindow, ...] = ()
    memory: MemoryPlan | None = None  # replicas on nodes of finite memory (``sim.memory``)

    @property
    def settle_s(self) -> float:
        """After this long every request has ended (each chain step is bounded by the timeout)."""
        return self.timeout_s * (len(self.fallback) + 1) + self.fallback_latency_s + 1.0


class Controller(Protocol):
    routing: Routing

    def next_wakeup_s(self, now_s: float) -> float | None: ...

    def tick(self, now_s: float, settled_until_s: float) -> None:
        """Act at ``now_s`` (may change ``routing``).

        Every request that arrived before ``settled_until_s`` has ended: windows of
        arrivals up to there are final.
        """
        ...


class Presence(Protocol):
    """Users who may leave (``sim.remembering``), asked at the first request of each of a
    user's sessions after their first.

    ``session_first`` bool [n] marks those requests; ``left`` holds the users who have left
    (their requests are not sent: recorded as ``ABSENT``, never routed).
    """

    @property
    def session_first(self) -> np.ndarray: ...

    @property
    def left(self) -> set[int]: ...

    def comes_back(self, i: int, user: int, ended_before_s: float) -> bool:
        """Whether ``user`` returns for the session request ``i`` starts; every request that
        arrived before ``ended_before_s`` has ended and may be taken into account."""
        ...


class Attempt:
    """One try of one request on one version's servers (a fallback makes another)."""

    __slots__ = (
        "chain_pos",
        "deadline",
        "granted",
        "i",
        "shadow",
        "t_arrival",
        "t_start",
        "user",
        "version",
    )

    def __init__(
        self,
        i: int,
        version: int,
        t_arrival: float,
        t_start: float,
        deadline: float,
        chain_pos: int,
        user: int,
        shadow: bool,
    ) -> None:
        self.i = i  # the request's row in the records
        self.version = version
        self.t_arrival = t_arrival  # when the user asked (latency counts from here)
        self.t_start = t_start  # when this try began (its timeout counts from here)
        self.deadline = deadline
        self.chain_pos = chain_pos  # 0 for the first try, k after k fallback steps
        self.user = user
        self.shadow = shadow  # a mirrored copy: recorded apart, never shown
        self.granted = False  # let in by the servers (in service, or done)


class StagedAttempt(Attempt):
    """An attempt on a staged serving path: where it is and whether it degraded (set by
    the engine when it enters a stage; ``degraded`` -1 until a stage's timeout degrades it).
    """

    __slots__ = ("degraded", "entered", "stage", "stage_deadline")

    stage: int
    entered: float  # when it joined the current stage's queue
    stage_deadline: float
    degraded: int  # first stage whose own timeout degraded the answer


class _Clock(simpy.Environment):
    """SimPy's environment, whose clock may also move to a time before anything is due.

    ``advance_to(t)`` is what ``yield env.timeout(t - now)`` does when no event is scheduled
    before or at ``t`` (the timeout would be the next event): the same order of everything,
    without creating, scheduling and processing an event.
    """

    def due(self) -> float:
        """When the next scheduled event is due (infinity when nothing is)."""
        queue = self._queue
        return queue[0][0] if queue else math.inf

    def advance_to(self, t: float) -> None:
        self._now = t


@dataclass(slots=True)
class EngineOutcome:
    records: Records
    cache: LruCache | None
    flush_times_s: list[float] = field(default_factory=list)
    events_processed: int = 0
    # Per version (index), per stage in path order: users' requests through that stage.
    stages: dict[int, list[StageCounters]] = field(default_factory=dict)
    # The same for mirrored (shadow) copies: they hold the stages' servers too, counted apart.
    shadow_stages: dict[int, list[StageCounters]] = field(default_factory=dict)
    coalesced: int = 0  # misses answered by another request's model call
    # Per autoscaled version (index): its ready replicas over time.
    autoscalers: dict[int, AutoscalerTrace] = field(default_factory=dict)
    memory: MemoryTrace | None = None


def simulate(
    plan: EnginePlan,
    controller: Controller,
    records: Records,
    *,
    rng_service: np.random.Generator,
    rng_faults: np.random.Generator,
    progress: Callable[[int, int], None] | None = None,
    presence: Presence | None = None,
) -> EngineOutcome:
    """Run the request stream through routing, cache and servers; return the records.

    ``progress(done, total)`` is called after every block of arrivals (for a progress bar).
    ``presence``: users who may leave; the requests of a user who left are not sent.
    """
    env = _Clock()
    n = int(plan.t_s.shape[0])
    if records.n != n:
        raise ValueError(f"records hold {records.n} slots for {n} requests")
    routing = controller.routing
    versions = plan.versions
    # Users' requests and mirrored copies draw service times from separate streams, so
    # turning shadow traffic on never changes what a real user waits for.
    streams = rng_service.spawn(2 * len(versions))
    samplers = [
        ServiceSampler(v.service, rng=s, cold_factor=v.cold_factor, cold_length_s=v.cold_length_s)
        for v, s in zip(versions, streams[: len(versions)], strict=True)
    ]
    shadow_samplers = [
        ServiceSampler(v.service, rng=s, cold_factor=v.cold_factor, cold_length_s=v.cold_length_s)
        for v, s in zip(versions, streams[len(versions) :], strict=True)
    ]
    # Filled in below, once ``start_service`` exists (a pool starts what it lets in).
    servers: list[ServerPool] = []
    # Staged serving paths: per version its stages (None: one pool), their pools, samplers.
    paths: list[tuple[StagePlan, ...] | None] = [v.stages or None for v in versions]
    # Spawned only when some version has stages: one-pool runs draw exactly as before.
    stage_streams = rng_service.spawn(2 * len(versions)) if any(paths) else []
    stage_samplers = [_stage_samplers(v, r) for v, r in zip(versions, stage_streams, strict=False)]
    shadow_stage_samplers = [
        _stage_samplers(v, r)
        for v, r in zip(versions, stage_streams[len(versions) :], strict=False)
    ]
    stage_pools: list[list[ServerPool]] = []
    cache_plan = plan.cache
    cache = LruCache(cache_plan.capacity, cache_plan.ttl_s) if cache_plan.enabled else None
    versioned = cache_plan.invalidation == "versioned_keys"
    outcome = EngineOutcome(records, cache)
    counters = outcome.stages
    shadow_counters = outcome.shadow_stages
    for v, path in enumerate(paths):
        if path is not None:
            counters[v] = [StageCounters(stage.name) for stage in path]
            shadow_counters[v] = [StageCounters(stage.name) for stage in path]
    # Single flight: key (version * n_users + user) -> [leader's row, waiting rows...].
    inflight: dict[int, list[int]] | None = (
        {} if cache_plan.coalesce and cache is not None else None
    )

    n_users = plan.n_users
    routing.baseline, routing.candidate = plan.baseline, plan.candidate
    if plan.sticky_memory:
        routing.remember_units(plan.n_units)
    timeout_s = plan.timeout_s
    queue_limit = plan.queue_limit
    chain = plan.fallback
    fallback_latency_s = plan.fallback_latency_s
    hit_latency_ms = cache_plan.hit_latency_s * 1000.0

    rec_version = records.version
    rec_served_by = records.served_by
    rec_cache = records.cache
    rec_result = records.result
    rec_failure = records.failure
    rec_latency = records.latency_ms
    rec_wait = records.wait_ms
    rec_shadow = records.shadow
    rec_shadow_result = records.shadow_result
    rec_shadow_latency = records.shadow_latency_ms
    rec_degraded = records.degraded
    rec_coalesced = records.coalesced
    plan_t = plan.t_s

    flushes = cache_plan.invalidation == "flush_on_change"
    plan_unit, plan_bucket, plan_eligible = plan.unit, plan.assign_bucket, plan.eligible

    def cache_key(version: int, user: int) -> int:
        return version * n_users + user if versioned else user

    def routed_now(i: int) -> int:
        """The version request ``i``'s unit would be routed to if it arrived now."""
        if routing.slow:
            return route(
                routing, int(plan_unit[i]), int(plan_bucket[i]), bool(plan_eligible[i]), env.now
            )
        if plan_eligible[i] and plan_bucket[i] < routing.candidate_threshold:
            return routing.candidate
        return routing.baseline

    def keeps(i: int, version: int) -> bool:
        """Whether ``version``'s list, just served for request ``i``, goes into the cache."""
        if versioned:
            return True  # its own key: only requests routed to ``version`` read it
        if version != int(rec_version[i]) or not _in_service(routing, version):
            return False
        return not flushes or routed_now(i) == version

    # --- completion of one request --------------------------------------------------------

    def finish_served(i: int, version: int, t_arrival: float, chain_pos: int, user: int) -> None:
        now = env.now
        rec_served_by[i] = version
        rec_latency[i] = (now - t_arrival) * 1000.0
        rec_result[i] = SERVED if chain_pos == 0 else FALLBACK
        if cache is not None and keeps(i, version):
            cache.store(cache_key(version, user), version, now)
        if inflight is not None and chain_pos == 0:
            answer_waiters(i, version, user, -1)

    def leader_done(i: int, version: int, user: int) -> list[int]:
        """The rows that waited for request ``i``'s model call (now over), if it led one."""
        key = version * n_users + user
        waiting = inflight.get(key) if inflight is not None else None
        if waiting is None or waiting[0] != i:
            return []
        del inflight[key]  # type: ignore[union-attr]
        return waiting[1:]

    def answer_waiters(i: int, version: int, user: int, degraded: int) -> None:
        """The leader's list (degraded or not) answers every request that waited for it."""
        now = env.now
        for j in leader_done(i, version, user):
            rec_served_by[j] = version
            rec_latency[j] = (now - plan_t[j]) * 1000.0
            rec_result[j] = SERVED
            rec_degraded[j] = degraded

    def fail(i: int, version: int, t_arrival: float, chain_pos: int, user: int, why: int) -> None:
        """An attempt failed: record why (first failure only) and walk the fallback chain.

        A single-flight leader's failure is every waiter's: each walks its own chain."""
        if rec_failure[i] == NO_FAILURE:
            rec_failure[i] = why
        if inflight is not None and chain_pos == 0:
            waiting = leader_done(i, version, user)
            walk_chain(i, version, t_arrival, chain_pos, user)
            for j in waiting:
                fail(j, version, float(plan_t[j]), 0, user, why)
            return
        walk_chain(i, version, t_arrival, chain_pos, user)

    def walk_chain(i: int, version: int, t_arrival: float, chain_pos: int, user: int) -> None:
        pos = chain_pos
        while pos < len(chain):
            step = chain[pos]
            pos += 1
            if step == "baseline" and version != routing.baseline:
                dispatch(i, routing.baseline, t_arrival, env.now, pos, user, False)
                return
            if step == "stale_cache" and cache is not None:
                got = _any_cached(
                    cache, user, versioned, n_users, int(rec_version[i]), routing, len(versions)
                )
                if got >= 0:
                    end_fallback(i, t_arrival, got, STALE)
                    return
            if step == "popular":
                end_fallback(i, t_arrival, POPULAR, rec_cache[i])
                return
        rec_result[i] = DROPPED
        rec_latency[i] = (env.now - t_arrival) * 1000.0

    def end_fallback(i: int, t_arrival: float, served_by: int, cache_code: int) -> None:
        rec_served_by[i] = served_by
        rec_cache[i] = cache_code
        rec_result[i] = FALLBACK
        rec_latency[i] = (env.now - t_arrival + fallback_latency_s) * 1000.0

    # --- one attempt on a version's servers ------------------------------------------------

    def dispatch(
        i: int,
        version: int,
        t_arrival: float,
        t_start: float,
        chain_pos: int,
        user: int,
        shadow: bool,
    ) -> None:
        server = servers[version]
        if faults.active and faults.error(version, shadow):
            if shadow:
                rec_shadow_result[i] = DROPPED
            else:
                fail(i, version, t_arrival, chain_pos, user, SERVER_ERROR)
            return
        if paths[version] is not None:
            deadline = t_start + timeout_s
            staged = StagedAttempt(
                i, version, t_arrival, t_start, deadline, chain_pos, user, shadow
            )
            staged.degraded = -1
            enter_stage(staged, 0)
            return
        if queue_limit and len(server.waiting) >= queue_limit:
            if shadow:
                rec_shadow_result[i] = DROPPED
            else:
                fail(i, version, t_arrival, chain_pos, user, QUEUE_FULL)
            return
        deadline = t_start + timeout_s
        attempt = Attempt(i, version, t_arrival, t_start, deadline, chain_pos, user, shadow)
        server.request(attempt)  # starts it now if let in
        if not attempt.granted:
            timer = env.timeout(deadline - env.now)
            timer.callbacks.append(partial(_drop_event, queue_deadline, attempt))

    def queue_deadline(attempt: Attempt) -> None:
        if attempt.granted:
            return  # let in before the deadline: service is under way
        servers[attempt.version].cancel(attempt)
        i = attempt.i
        if attempt.shadow:
            rec_shadow_result[i] = DROPPED
            rec_shadow_latency[i] = timeout_s * 1000.0
        else:
            if attempt.chain_pos == 0:
                rec_wait[i] = timeout_s * 1000.0
            fail(i, attempt.version, attempt.t_arrival, attempt.chain_pos, attempt.user, TIMEOUT)

    def start_service(attempt: Attempt) -> None:
        now = env.now
        version, shadow = attempt.version, attempt.shadow
        if attempt.chain_pos == 0 and not shadow:
            rec_wait[attempt.i] = (now - attempt.t_start) * 1000.0
        service_s = (shadow_samplers if shadow else samplers)[version].next_s(now)
        server = servers[version]
        done = env.timeout(service_s)
        if now + service_s <= attempt.deadline:
            done.callbacks.append(lambda _ev: complete(attempt, server))
        else:
            # The client gives up at its deadline; the server still works the whole time.
            done.callbacks.append(partial(_release, server))
            late = env.timeout(attempt.deadline - now)
            late.callbacks.append(lambda _ev: give_up(attempt))

    def complete(attempt: Attempt, server: ServerPool) -> None:
        server.release()
        if attempt.shadow:
            rec_shadow_result[attempt.i] = SERVED
            rec_shadow_latency[attempt.i] = (env.now - attempt.t_start) * 1000.0
        else:
            finish_served(
                attempt.i, attempt.version, attempt.t_arrival, attempt.chain_pos, attempt.user
            )

    def give_up(attempt: Attempt) -> None:
        if attempt.shadow:
            rec_shadow_result[attempt.i] = DROPPED
            rec_shadow_latency[attempt.i] = (env.now - attempt.t_start) * 1000.0
        else:
            fail(
                attempt.i,
                attempt.version,
                attempt.t_arrival,
                attempt.chain_pos,
                attempt.user,
                TIMEOUT,
            )

    # --- staged serving paths (sim.stages) --------------------------------------------------

    def enter_stage(attempt: StagedAttempt, k: int) -> None:
        version = attempt.version
        stage = paths[version][k]  # type: ignore[index]
        pool = stage_pools[version][k]
        now = env.now
        if queue_limit and len(pool.waiting) >= queue_limit:
            stage_failed(attempt, QUEUE_FULL)
            return
        attempt.stage = k
        attempt.entered = now
        attempt.granted = False
        attempt.stage_deadline = min(now + stage.timeout_s, attempt.deadline)
        (shadow_counters if attempt.shadow else counters)[version][k].entered += 1
        pool.request(attempt)  # starts it now if let in
        if not attempt.granted:
            timer = env.timeout(attempt.stage_deadline - now)
            timer.callbacks.append(partial(stage_queue_deadline, attempt, k))

    def stage_queue_deadline(attempt: StagedAttempt, k: int, _event: Any) -> None:
        if attempt.stage != k or attempt.granted:
            return  # let in before the deadline: service is under way
        stage_pools[attempt.version][k].cancel(attempt)
        stage_timed_out(attempt, k)

    def start_stage(attempt: StagedAttempt) -> None:
        now = env.now
        version, k = attempt.version, attempt.stage
        if attempt.chain_pos == 0 and not attempt.shadow:
            rec_wait[attempt.i] += (now - attempt.entered) * 1000.0  # waits add up over stages
        sampler = (shadow_stage_samplers if attempt.shadow else stage_samplers)[version][k]
        service_s = sampler.next_s(now)
        done = env.timeout(service_s)
        if now + service_s <= attempt.stage_deadline:
            done.callbacks.append(partial(stage_done, attempt, k))
        else:
            # The stage gives up at its deadline; its server still works the whole time.
            done.callbacks.append(partial(_release, stage_pools[version][k]))
            late = env.timeout(attempt.stage_deadline - now)
            late.callbacks.append(partial(_stage_late, stage_timed_out, attempt, k))

    def stage_done(attempt: StagedAttempt, k: int, _event: Any) -> None:
        stage_pools[attempt.version][k].release()
        c = (shadow_counters if attempt.shadow else counters)[attempt.version][k]
        c.completed += 1
        c.sojourn_ms.append((env.now - attempt.entered) * 1000.0)
        next_stage(attempt, k)

    def next_stage(attempt: StagedAttempt, k: int) -> None:
        if k + 1 < len(paths[attempt.version]):  # type: ignore[arg-type]
            enter_stage(attempt, k + 1)
        else:
            finish_path(attempt)

    def stage_timed_out(attempt: StagedAttempt, k: int) -> None:
        """Stage ``k``'s own timeout degrades the answer if the stage says so; the request's
        overall timeout (or a stage that may not degrade) is a timeout of the attempt."""
        stage = paths[attempt.version][k]  # type: ignore[index]
        c = (shadow_counters if attempt.shadow else counters)[attempt.version][k]
        c.timeouts += 1
        if attempt.stage_deadline < attempt.deadline and stage.degrade != FAIL:
            c.degraded += 1
            if attempt.degraded < 0:
                attempt.degraded = k
            if stage.degrade == SKIP:
                next_stage(attempt, k)
            else:
                finish_path(attempt)
            return
        stage_failed(attempt, TIMEOUT)

    def stage_failed(attempt: StagedAttempt, why: int) -> None:
        i = attempt.i
        if attempt.shadow:
            rec_shadow_result[i] = DROPPED
            rec_shadow_latency[i] = (env.now - attempt.t_start) * 1000.0
        else:
            fail(i, attempt.version, attempt.t_arrival, attempt.chain_pos, attempt.user, why)

    def finish_path(attempt: StagedAttempt) -> None:
        i, version = attempt.i, attempt.version
        if attempt.shadow:
            rec_shadow_result[i] = SERVED
            rec_shadow_latency[i] = (env.now - attempt.t_start) * 1000.0
            return
        if attempt.degraded < 0:
            finish_served(i, version, attempt.t_arrival, attempt.chain_pos, attempt.user)
            return
        # A degraded list is shown but never cached: the next request gets a full answer.
        rec_degraded[i] = attempt.degraded
        rec_served_by[i] = version
        rec_latency[i] = (env.now - attempt.t_arrival) * 1000.0
        rec_result[i] = SERVED if attempt.chain_pos == 0 else FALLBACK
        if inflight is not None and attempt.chain_pos == 0:
            answer_waiters(i, version, attempt.user, attempt.degraded)

    servers.extend(ServerPool(v.capacity, start_service) for v in versions)
    stage_pools.extend([ServerPool(st.capacity, start_stage) for st in v.stages] for v in versions)
    faults = FaultState(
        plan.faults, servers, versions, [samplers, shadow_samplers], rng_faults, routing, cache
    )

    # --- processes ------------------------------------------------------------------------

    def arrivals() -> Generator[simpy.Event, Any, None]:
        timeout = env.timeout
        due = env.due
        advance_to = env.advance_to
        lookup = cache.lookup if cache is not None else None
        stats = cache.stats if cache is not None else None
        left = presence.left if presence is not None else set()
        comes_back = presence.comes_back if presence is not None else None
        settle_s = plan.settle_s
        firsts: list[bool] = []
        for lo in range(0, n, _CHUNK):
            if progress is not None:
                progress(lo, n)
            hi = min(lo + _CHUNK, n)
            times = plan.t_s[lo:hi].tolist()
            users = plan.user[lo:hi].tolist()
            assign = plan.assign_bucket[lo:hi].tolist()
            mirror = plan.mirror_bucket[lo:hi].tolist()
            eligible = plan.eligible[lo:hi].tolist()
            units = plan.unit[lo:hi].tolist()
            if presence is not None:
                firsts = presence.session_first[lo:hi].tolist()
            for j, t in enumerate(times):
                now = env.now
                if t > now:
                    if t < due():
                        advance_to(t)  # nothing happens before it: no event needed
                    else:
                        yield timeout(t - now)
                    now = env.now
                i = lo + j
                user = users[j]
                if comes_back is not None and (
                    user in left or (firsts[j] and not comes_back(i, user, now - settle_s))
                ):
                    rec_result[i] = ABSENT  # a user who left sends nothing more
                    rec_version[i] = NOTHING  # assigned to no version
                    continue
                baseline, candidate = routing.baseline, routing.candidate
                if routing.slow:
                    version = route(routing, units[j], assign[j], eligible[j], t)
                elif eligible[j] and assign[j] < routing.candidate_threshold:
                    version = candidate
                else:
                    version = baseline
                rec_version[i] = version
                if lookup is not None:
                    got = lookup(version * n_users + user if versioned else user, now)
                    if got >= 0:
                        rec_served_by[i] = got
                        rec_latency[i] = hit_latency_ms
                        rec_result[i] = SERVED
                        if got == version:
                            rec_cache[i] = HIT
                        else:
                            rec_cache[i] = STALE
                            stats.stale_serves += 1  # type: ignore[union-attr]
                    else:
                        rec_cache[i] = MISS
                        if inflight is None:
                            dispatch(i, version, now, now, 0, user, False)
                        else:
                            key = version * n_users + user
                            waiting = inflight.get(key)
                            if waiting is None:
                                inflight[key] = [i]  # this request leads the model call
                                dispatch(i, version, now, now, 0, user, False)
                            else:
                                waiting.append(i)
                                rec_coalesced[i] = True
                                outcome.coalesced += 1
                else:
                    dispatch(i, version, now, now, 0, user, False)
                if version == baseline and mirror[j] < routing.mirror_threshold and eligible[j]:
                    rec_shadow[i] = candidate
                    dispatch(i, candidate, now, now, 0, user, True)

    def control() -> Generator[simpy.Event, Any, None]:
        settle_s = plan.settle_s
        while True:
            wake = controller.next_wakeup_s(env.now)
            if wake is None or wake > plan.duration_s:
                return
            if wake > env.now:
                yield env.timeout(wake - env.now)
            # Flush only when what users see changes (who gets the candidate, or which
            # versions play the roles), never for a mirror-only step.
            before = (routing.candidate_threshold, routing.candidate, routing.baseline)
            controller.tick(env.now, env.now - settle_s)
            changed = before != (routing.candidate_threshold, routing.candidate, routing.baseline)
            if nodes is not None:
                # A rolled-back candidate's stack leaves; the old one once a promotion is final.
                if getattr(controller, "rollback_s", None) is not None:
                    nodes.retire(plan.candidate)
                elif getattr(controller, "promote_s", None) is not None and getattr(
                    controller, "finished", False
                ):
                    nodes.retire(plan.baseline)
            if changed and cache is not None and cache_plan.invalidation == "flush_on_change":
                cache.flush()
                outcome.flush_times_s.append(env.now)

    if faults.active:
        faults.install(env)
    nodes: Nodes | None = None
    if plan.memory is not None:
        outcome.memory = MemoryTrace()
        pair = (versions[plan.baseline], versions[plan.candidate])
        nodes = Nodes(
            env,
            plan.memory,
            [servers[plan.baseline], servers[plan.candidate]],
            (pair[0].replicas, pair[1].replicas),
            (pair[0].concurrency, pair[1].concurrency),
            outcome.memory,
            until_s=plan.duration_s,
            scaled=(pair[0].autoscaler is not None, pair[1].autoscaler is not None),
        )
    placed = {plan.baseline: 0, plan.candidate: 1} if nodes is not None else {}
    for v, version_plan in enumerate(versions):
        if version_plan.autoscaler is not None:
            trace = outcome.autoscalers[v] = AutoscalerTrace()
            slot = placed.get(v)
            ready = version_plan.replicas
            allocate: Callable[[], bool] | None = None
            release: Callable[[], None] | None = None
            if nodes is not None and slot is not None:
                # Only the replicas that fitted at the start are ready.
                ready = nodes.started(slot)
                servers[v].set_capacity(ready * version_plan.concurrency)
                allocate, release = partial(nodes.allocate, slot), partial(nodes.release, slot)
            env.process(
                run_autoscaler(
                    env,
                    servers[v],
                    ready,
                    version_plan.concurrency,
                    version_plan.autoscaler,
                    plan.duration_s,
                    trace,
                    allocate=allocate,
                    release=release,
                )
            )
    env.process(arrivals())
    env.process(control())
    env.run()
    if nodes is not None:
        nodes.settle()
    if progress is not None:
        progress(n, n)
    return outcome


def _stage_samplers(version: VersionPlan, rng: np.random.Generator) -> list[ServiceSampler]:
    """One service-time stream per stage of ``version``'s path."""
    streams = rng.spawn(len(version.stages))
    return [
        ServiceSampler(st.service, rng=r) for st, r in zip(version.stages, streams, strict=True)
    ]


def _release(server: ServerPool, _event: Any) -> None:
    server.release()


def _stage_late(
    action: Callable[[Any, int], None], attempt: Attempt, stage: int, _event: Any
) -> None:
    action(attempt, stage)


def _drop_event(action: Callable[[Attempt], None], attempt: Attempt, _event: Any) -> None:
    """SimPy callbacks receive the event; the engine's handlers only need the attempt."""
    action(attempt)


def _in_service(routing: Routing, version: int) -> bool:
    """Whether new requests may be routed to ``version`` (see the module docstring)."""
    return version == routing.baseline or (
        version == routing.candidate and routing.candidate_threshold > 0
    )


def _any_cached(
    cache: LruCache,
    user: int,
    versioned: bool,
    n_users: int,
    assigned: int,
    routing: Routing,
    n_versions: int,
) -> int:
    """Version of a list cached for ``user``, of any age, from a version in service or the
    one the request drains on (assigned first, then baseline, then others); ``-1`` if none."""

    def servable(v: int) -> bool:
        return _in_service(routing, v) or v == assigned == routing.drain_version

    if not versioned:
        got = cache.peek_any(user)
        return got if got >= 0 and servable(got) else -1
    baseline = routing.baseline
    order = [assigned, baseline, *[v for v in range(n_versions) if v not in (assigned, baseline)]]
    for v in order:
        if servable(v) and cache.peek_any(v * n_users + user) >= 0:
            return v
    return -1
