"""The discrete-event engine: the only module that uses SimPy.

Per request the engine does as little as possible (DESIGN section 2):

* arrivals come from one generator process that sleeps until the next logged/synthetic
  arrival; routing is one comparison of a precomputed bucket with the current threshold;
* a cache hit is handled inline in that loop — no process, no event;
* a miss becomes a request on the version's ``simpy.Resource`` (replicas x concurrency).  It is
  driven by callbacks rather than a process per request: a granted request schedules one
  timeout for its service time; a queued one also arms a deadline timer that cancels it if
  the client's timeout passes first (the server never works on an abandoned request);
* a request whose service would end after the client's deadline keeps the server busy for
  the whole service time (the work is wasted) while the client falls back at the deadline.

Fallback chain (``serving.fallback``): ``baseline`` re-sends the request to the baseline's
servers with a fresh timeout, ``stale_cache`` serves any cached list for the user whatever its
age or version, ``popular`` serves the popularity list; when the chain is exhausted the request
is dropped.  Every arrival ends as exactly one of served / fallback / dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import numpy as np
import simpy

from sim.cache import LruCache
from sim.records import (
    DROPPED,
    FALLBACK,
    HIT,
    MISS,
    NO_FAILURE,
    POPULAR,
    QUEUE_FULL,
    SERVED,
    SERVER_ERROR,
    STALE,
    TIMEOUT,
    Records,
)
from sim.servers import ServiceSampler, ServiceTime

__all__ = ["CachePlan", "Controller", "EnginePlan", "Routing", "VersionPlan", "simulate"]

_CHUNK = 65_536


@dataclass(frozen=True, slots=True)
class VersionPlan:
    name: str
    service: ServiceTime
    replicas: int
    concurrency: int
    cold_factor: float = 1.0
    cold_length_s: float = 0.0

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


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """A scheduled fault on one version during ``[start_s, end_s)``.

    kind: ``latency`` (service times x ``factor``), ``errors`` (each request fails at once
    with probability ``fraction``), ``capacity`` (only ``fraction`` of the capacity is up) or
    ``misroute`` (``fraction`` of the units assigned to the candidate go to the baseline) or
    ``cache_loss`` (a cache node fails: ``fraction`` of the entries and capacity are gone).
    """

    version: int
    kind: str
    start_s: float
    end_s: float
    factor: float = 1.0
    fraction: float = 0.0


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

    @property
    def settle_s(self) -> float:
        """After this long every request has ended (each chain step is bounded by the timeout)."""
        return self.timeout_s * (len(self.fallback) + 1) + self.fallback_latency_s + 1.0


@dataclass(slots=True)
class Routing:
    """Mutable routing state the controller steers and the arrival loop reads."""

    candidate_threshold: int = 0
    mirror_threshold: int = 0
    #: Which versions play baseline (production) and candidate now; a release train moves them.
    baseline: int = 0
    candidate: int = 1
    #: Buckets below this (of a second, independent hash) are misrouted to the baseline.
    misroute_threshold: int = 0
    #: After a rollback with ``drain``: sessions that keep the candidate until they end.
    drain_sessions: frozenset[int] = frozenset()


class Controller(Protocol):
    routing: Routing

    def next_wakeup_s(self, now_s: float) -> float | None: ...

    def tick(self, now_s: float, settled: int) -> None:
        """Act at ``now_s`` with requests ``[0, settled)`` settled (may change ``routing``)."""
        ...


@dataclass(slots=True)
class EngineOutcome:
    records: Records
    cache: LruCache | None
    flush_times_s: list[float] = field(default_factory=list)
    events_processed: int = 0


def simulate(
    plan: EnginePlan,
    controller: Controller,
    records: Records,
    *,
    rng_service: np.random.Generator,
    rng_faults: np.random.Generator,
    progress: Callable[[int, int], None] | None = None,
) -> EngineOutcome:
    """Run the request stream through routing, cache and servers; return the records.

    ``progress(done, total)`` is called after every block of arrivals (for a progress bar).
    """
    env = simpy.Environment()
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
    servers = [simpy.Resource(env, capacity=v.capacity) for v in versions]
    cache_plan = plan.cache
    cache = LruCache(cache_plan.capacity, cache_plan.ttl_s) if cache_plan.enabled else None
    versioned = cache_plan.invalidation == "versioned_keys"
    outcome = EngineOutcome(records, cache)

    n_users = plan.n_users
    routing.baseline, routing.candidate = plan.baseline, plan.candidate
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

    faults = _FaultState(
        plan.faults, servers, versions, [samplers, shadow_samplers], rng_faults, routing, cache
    )

    def cache_key(version: int, user: int) -> int:
        return version * n_users + user if versioned else user

    # --- completion of one request --------------------------------------------------------

    def finish_served(i: int, version: int, t_arrival: float, chain_pos: int, user: int) -> None:
        now = env.now
        rec_served_by[i] = version
        rec_latency[i] = (now - t_arrival) * 1000.0
        rec_result[i] = SERVED if chain_pos == 0 else FALLBACK
        if cache is not None and (versioned or version == int(rec_version[i])):
            cache.store(cache_key(version, user), version, now)

    def fail(i: int, version: int, t_arrival: float, chain_pos: int, user: int, why: int) -> None:
        """An attempt failed: record why (first failure only) and walk the fallback chain."""
        if rec_failure[i] == NO_FAILURE:
            rec_failure[i] = why
        pos = chain_pos
        while pos < len(chain):
            step = chain[pos]
            pos += 1
            if step == "baseline" and version != routing.baseline:
                dispatch(i, routing.baseline, t_arrival, env.now, pos, user, False)
                return
            if step == "stale_cache" and cache is not None:
                got = _any_cached(
                    cache,
                    user,
                    versioned,
                    n_users,
                    int(rec_version[i]),
                    routing.baseline,
                    len(versions),
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
        if queue_limit and len(server.queue) >= queue_limit:
            if shadow:
                rec_shadow_result[i] = DROPPED
            else:
                fail(i, version, t_arrival, chain_pos, user, QUEUE_FULL)
            return
        request = server.request()
        deadline = t_start + timeout_s
        attempt = (i, version, t_arrival, t_start, deadline, chain_pos, user, shadow, request)
        if request.triggered:
            start_service(attempt)
        else:
            request.callbacks.append(partial(_drop_event, start_service, attempt))
            timer = env.timeout(deadline - env.now)
            timer.callbacks.append(partial(_drop_event, queue_deadline, attempt))

    def queue_deadline(attempt: tuple[Any, ...]) -> None:
        i, version, t_arrival, _t_start, _deadline, chain_pos, user, shadow, request = attempt
        if request.triggered:
            return  # granted before the deadline: service is under way
        request.cancel()
        if shadow:
            rec_shadow_result[i] = DROPPED
            rec_shadow_latency[i] = timeout_s * 1000.0
        else:
            rec_wait[i] = timeout_s * 1000.0 if chain_pos == 0 else rec_wait[i]
            fail(i, version, t_arrival, chain_pos, user, TIMEOUT)

    def start_service(attempt: tuple[Any, ...]) -> None:
        i, version, _t_arrival, t_start, deadline, chain_pos, _user, shadow, request = attempt
        now = env.now
        if chain_pos == 0 and not shadow:
            rec_wait[i] = (now - t_start) * 1000.0
        service_s = (shadow_samplers if shadow else samplers)[version].next_s(now)
        server = servers[version]
        done = env.timeout(service_s)
        if now + service_s <= deadline:
            done.callbacks.append(lambda _ev: complete(attempt, server))
        else:
            done.callbacks.append(lambda _ev: server.release(request))
            late = env.timeout(deadline - now)
            late.callbacks.append(lambda _ev: give_up(attempt))

    def complete(attempt: tuple[Any, ...], server: simpy.Resource) -> None:
        i, version, t_arrival, t_start, _deadline, chain_pos, user, shadow, request = attempt
        server.release(request)
        if shadow:
            rec_shadow_result[i] = SERVED
            rec_shadow_latency[i] = (env.now - t_start) * 1000.0
        else:
            finish_served(i, version, t_arrival, chain_pos, user)

    def give_up(attempt: tuple[Any, ...]) -> None:
        i, version, t_arrival, t_start, _deadline, chain_pos, user, shadow, _request = attempt
        if shadow:
            rec_shadow_result[i] = DROPPED
            rec_shadow_latency[i] = (env.now - t_start) * 1000.0
        else:
            fail(i, version, t_arrival, chain_pos, user, TIMEOUT)

    # --- processes ------------------------------------------------------------------------

    memory = np.full(plan.n_units, -1, np.int8) if plan.sticky_memory else None

    def route(unit: int, bucket: int, eligible: bool, session: int) -> int:
        """The slow path of routing: sticky memory, misrouting faults, draining sessions."""
        baseline, candidate = routing.baseline, routing.candidate
        if routing.drain_sessions and session in routing.drain_sessions:
            return candidate
        if memory is not None:
            seen = int(memory[unit])
            if seen < 0:
                seen = 1 if (eligible and bucket < routing.candidate_threshold) else 0
                memory[unit] = seen
            on_candidate = seen == 1 and routing.candidate_threshold > 0
        else:
            on_candidate = eligible and bucket < routing.candidate_threshold
        if (
            on_candidate
            and routing.misroute_threshold
            and ((bucket * 7919 + 4099) % 10_000 < routing.misroute_threshold)
        ):
            return baseline
        return candidate if on_candidate else baseline

    def arrivals() -> Generator[simpy.Event, Any, None]:
        timeout = env.timeout
        lookup = cache.lookup if cache is not None else None
        stats = cache.stats if cache is not None else None
        slow_routing = plan.sticky_memory
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
            sessions = plan.session[lo:hi].tolist()
            for j, t in enumerate(times):
                now = env.now
                if t > now:
                    yield timeout(t - now)
                    now = env.now
                i = lo + j
                user = users[j]
                baseline, candidate = routing.baseline, routing.candidate
                if slow_routing or routing.misroute_threshold or routing.drain_sessions:
                    version = route(units[j], assign[j], eligible[j], sessions[j])
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
                        dispatch(i, version, now, now, 0, user, False)
                else:
                    dispatch(i, version, now, now, 0, user, False)
                if version == baseline and mirror[j] < routing.mirror_threshold and eligible[j]:
                    rec_shadow[i] = candidate
                    dispatch(i, candidate, now, now, 0, user, True)

    def control() -> Generator[simpy.Event, Any, None]:
        t_s = plan.t_s
        settle_s = plan.settle_s
        while True:
            wake = controller.next_wakeup_s(env.now)
            if wake is None or wake > plan.duration_s:
                return
            if wake > env.now:
                yield env.timeout(wake - env.now)
            settled = int(np.searchsorted(t_s, env.now - settle_s, side="left"))
            # Flush only when what users see changes (who gets the candidate, or which
            # versions play the roles), never for a mirror-only step.
            before = (routing.candidate_threshold, routing.candidate, routing.baseline)
            controller.tick(env.now, settled)
            changed = before != (routing.candidate_threshold, routing.candidate, routing.baseline)
            if changed and cache is not None and cache_plan.invalidation == "flush_on_change":
                cache.flush()
                outcome.flush_times_s.append(env.now)

    if faults.active:
        faults.install(env)
    env.process(arrivals())
    env.process(control())
    env.run()
    if progress is not None:
        progress(n, n)
    return outcome


def _drop_event(
    action: Callable[[tuple[Any, ...]], None], attempt: tuple[Any, ...], _event: Any
) -> None:
    """SimPy callbacks receive the event; the engine's handlers only need the attempt."""
    action(attempt)


def _any_cached(
    cache: LruCache,
    user: int,
    versioned: bool,
    n_users: int,
    assigned: int,
    baseline: int,
    n_versions: int,
) -> int:
    """Version of any list cached for ``user`` (assigned first, then baseline, then others)."""
    if not versioned:
        return cache.peek_any(user)
    order = [assigned, baseline, *[v for v in range(n_versions) if v not in (assigned, baseline)]]
    for v in order:
        got = cache.peek_any(v * n_users + user)
        if got >= 0:
            return got
    return -1


class _FaultState:
    """Scheduled faults: latency multipliers, error bursts and capacity loss per version."""

    def __init__(
        self,
        faults: tuple[FaultWindow, ...],
        servers: list[simpy.Resource],
        versions: tuple[VersionPlan, ...],
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
        if fault.kind == "latency":
            for group in self.samplers:
                group[v].scale = fault.factor if on else 1.0
        elif fault.kind == "errors":
            self.error_fraction[v] = fault.fraction if on else 0.0
        elif fault.kind == "capacity":
            full = self.versions[v].capacity
            # Capacity 0 is a version with every replica down: requests queue until timeout.
            _set_capacity(self.servers[v], max(0, round(full * fault.fraction)) if on else full)
        elif fault.kind == "misroute":
            self.routing.misroute_threshold = round(fault.fraction * 10_000) if on else 0
        elif fault.kind == "cache_loss" and self.cache is not None:
            if on:
                self.cache.lose_share(fault.fraction)
            else:
                self.cache.restore_capacity()


def _set_capacity(server: simpy.Resource, capacity: int) -> None:
    """Change a resource's capacity mid-run; running requests finish, queued ones wait for room."""
    server._capacity = (
        capacity  # SimPy exposes capacity read-only; the slot is the source of truth.
    )
    server._trigger_put(None)
