"""Invariants of the serving engine over many small random plans (Hypothesis).

Each example is a small plan (at most a few hundred requests, a handful of users and
servers) drawn from a ``Spec``: arrivals, service laws, timeouts, queue limits, fallback
chains, cache settings, targeting, routing schedules and faults.  The properties:

- accounting: one final record per arrival (served / fallback / dropped, none pending),
  codes consistent with each other, every shadow copy accounted for;
- shadow traffic never changes what a user sees or how long they wait, when the candidate
  has enough capacity that its queue cannot push work back onto the baseline;
- routing follows the controller, and a ramp that only raises the candidate threshold keeps
  every user who saw the candidate on the candidate;
- under ``versioned_keys`` a served request shows the version it was assigned;
- the same seed gives the same bytes;
- tiny capacity with short timeouts and a full fallback chain still accounts for everything.

Hypothesis runs derandomized (fixed seed, no example database) so the suite is
deterministic; the ``slow`` variants explore many more examples.

Regression tests cover engine bugs these properties found and that are fixed: shadow copies
once shared the candidate's service-time stream and the error-fault stream with user
traffic, the stale-cache fallback under versioned keys overflowed the int8 version code, and
a mirror-only routing step flushed a ``flush_on_change`` cache.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.engine import CachePlan, EnginePlan
from sim.faults import FaultWindow
from sim.records import (
    BYPASS,
    DROPPED,
    FALLBACK,
    HIT,
    MISS,
    NO_FAILURE,
    NOTHING,
    PENDING,
    POPULAR,
    SERVED,
    STALE,
    Records,
)
from sim.router import BUCKETS, Routing
from tests.helpers_engine import (
    NEVER_S,
    RECORD_COLUMNS,
    USER_COLUMNS,
    FixedController,
    ScheduleController,
    columns,
    make_plan,
    poisson_times,
    run_plan,
    version,
)

FAST = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SLOW = settings(FAST, max_examples=3000)

INVALIDATIONS = ("versioned_keys", "flush_on_change", "ttl_only")
FALLBACK_STEPS = ("baseline", "stale_cache", "popular")


@dataclass(frozen=True)
class Fault:
    version: int
    kind: str  # latency | errors | capacity
    start: float  # fraction of the run
    end: float
    factor: float
    fraction: float


@dataclass(frozen=True)
class Spec:
    """Everything one small plan is built from (times are fractions of the run where noted)."""

    n: int
    rate_per_s: float
    n_users: int  # distinct users in the traffic
    id_space: int  # user ids are spread over [0, id_space): the plan's n_users
    traffic_seed: int
    engine_seed: int
    baseline_slots: int
    candidate_slots: int
    baseline_mean_ms: float
    candidate_mean_ms: float
    lognormal: bool
    timeout_s: float
    queue_limit: int
    fallback: tuple[str, ...]
    cache_enabled: bool
    cache_capacity: int
    cache_ttl_s: float
    invalidation: str
    ineligible_every: int  # users with id % k == 0 never see the candidate (0: all eligible)
    schedule: tuple[tuple[float, int, int], ...]  # (fraction of run, candidate, mirror)
    faults: tuple[Fault, ...]


def build(spec: Spec) -> tuple[EnginePlan, ScheduleController]:
    rng = np.random.default_rng(spec.traffic_seed)
    t_s = poisson_times(spec.rate_per_s, spec.n, rng=rng)
    ids = rng.choice(spec.id_space, size=spec.n_users, replace=False)
    users = ids[rng.integers(0, spec.n_users, spec.n)].astype(np.int32)
    eligible = (
        np.ones(spec.n, bool) if spec.ineligible_every == 0 else users % spec.ineligible_every != 0
    )
    span = float(t_s[-1])

    def law(mean_ms: float) -> dict[str, object]:
        return {"lognormal": (mean_ms, mean_ms * 4.0)} if spec.lognormal else {"mean_ms": mean_ms}

    plan = make_plan(
        t_s,
        users=users,
        n_users=spec.id_space,
        versions=[
            version("baseline", servers=spec.baseline_slots, **law(spec.baseline_mean_ms)),  # type: ignore[arg-type]
            version("candidate", servers=spec.candidate_slots, **law(spec.candidate_mean_ms)),  # type: ignore[arg-type]
        ],
        timeout_s=spec.timeout_s,
        queue_limit=spec.queue_limit,
        fallback=spec.fallback,
        cache=CachePlan(
            spec.cache_enabled, spec.cache_capacity, spec.cache_ttl_s, spec.invalidation, 0.001
        ),
        eligible=eligible,
        faults=[
            FaultWindow(f.version, f.kind, f.start * span, f.end * span, f.factor, f.fraction)
            for f in spec.faults
        ],
    )
    schedule = tuple((frac * span, cand, mirror) for frac, cand, mirror in spec.schedule)
    return plan, ScheduleController(schedule)


# --- strategies ------------------------------------------------------------------------------

thresholds = st.integers(0, BUCKETS)
faults = st.builds(
    lambda v, kind, a, b, factor, fraction: Fault(v, kind, min(a, b), max(a, b), factor, fraction),
    st.integers(0, 1),
    st.sampled_from(("latency_spike", "error_burst", "capacity_loss")),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    st.floats(1.0, 20.0),
    st.floats(0.0, 1.0),
)


@st.composite
def specs(
    draw: st.DrawFn,
    *,
    max_n: int = 200,
    timeouts: bool = True,
    with_faults: bool = True,
    ramp_only: bool = False,
) -> Spec:
    steps = draw(st.lists(st.tuples(st.floats(0.0, 1.0), thresholds, thresholds), max_size=4))
    steps.sort(key=lambda s: s[0])
    if ramp_only:  # candidate threshold never decreases
        top = 0
        ramp = []
        for frac, cand, mirror in steps:
            top = max(top, cand)
            ramp.append((frac, top, mirror))
        steps = ramp
    chain = draw(st.permutations(FALLBACK_STEPS))
    n_users = draw(st.integers(1, 40))
    spec = Spec(
        n=draw(st.integers(1, max_n)),
        rate_per_s=draw(st.floats(20.0, 3000.0)),
        n_users=n_users,
        id_space=draw(st.sampled_from((n_users, 40, 1_000, 100_000))),
        traffic_seed=draw(st.integers(0, 2**32 - 1)),
        engine_seed=draw(st.integers(0, 2**32 - 1)),
        baseline_slots=draw(st.integers(1, 4)),
        candidate_slots=draw(st.integers(1, 4)),
        baseline_mean_ms=draw(st.floats(0.5, 30.0)),
        candidate_mean_ms=draw(st.floats(0.5, 30.0)),
        lognormal=draw(st.booleans()),
        timeout_s=draw(st.floats(0.001, 0.2)) if timeouts and draw(st.booleans()) else NEVER_S,
        queue_limit=draw(st.integers(0, 6)),
        fallback=tuple(chain[: draw(st.integers(0, 3))]),
        cache_enabled=draw(st.booleans()),
        cache_capacity=draw(st.integers(0, 30)),
        cache_ttl_s=draw(st.sampled_from((0.001, 0.05, 1.0, math.inf))),
        invalidation=draw(st.sampled_from(INVALIDATIONS)),
        ineligible_every=draw(st.sampled_from((0, 0, 2, 3))),
        schedule=tuple(steps),
        faults=tuple(draw(st.lists(faults, max_size=3))) if with_faults else (),
    )
    return spec


# --- checks ----------------------------------------------------------------------------------


def assert_accounted(plan: EnginePlan, rec: Records) -> None:
    """One final, self-consistent record per arrival, and every shadow copy finished."""
    result = rec.result
    n = plan.t_s.shape[0]
    served, fallback, dropped = (
        int((result == code).sum()) for code in (SERVED, FALLBACK, DROPPED)
    )
    assert not (result == PENDING).any()
    assert served + fallback + dropped == n
    assert np.isin(rec.version, (plan.baseline, plan.candidate)).all()

    # Nothing shown exactly when dropped; a fallback or a drop always has a first failure.
    assert np.array_equal(result == DROPPED, rec.served_by == NOTHING)
    assert (rec.failure[result != SERVED] != NO_FAILURE).all()
    # A served request either hit the cache or was answered by its assigned version.
    from_server = (result == SERVED) & np.isin(rec.cache, (MISS, BYPASS))
    assert (rec.served_by[from_server] == rec.version[from_server]).all()
    assert (rec.failure[result == SERVED] == NO_FAILURE).all()
    hit = rec.cache == HIT
    assert (rec.served_by[hit] == rec.version[hit]).all()
    assert (result[hit] == SERVED).all()
    stale_served = (rec.cache == STALE) & (result == SERVED)
    assert (rec.served_by[stale_served] != rec.version[stale_served]).all()
    if not plan.cache.enabled:
        assert (rec.cache == BYPASS).all()
    # The popular list only ever appears through the fallback chain.
    assert (result[rec.served_by == POPULAR] == FALLBACK).all()

    # Latency: non-negative, bounded by one full fallback chain, never below the wait.
    bound_ms = plan.settle_s * 1000.0
    assert (rec.latency_ms >= 0).all() and (rec.latency_ms <= bound_ms).all()
    assert (rec.wait_ms[from_server] <= rec.latency_ms[from_server]).all()

    # Shadows: only of baseline traffic, to the candidate, and each one ended.
    shadowed = rec.shadow >= 0
    assert (rec.shadow[shadowed] == plan.candidate).all()
    assert (rec.version[shadowed] == plan.baseline).all()
    assert np.isin(rec.shadow_result[shadowed], (SERVED, DROPPED)).all()
    assert (rec.shadow_result[~shadowed] == PENDING).all()


def expected_versions(
    plan: EnginePlan, controller: ScheduleController
) -> tuple[np.ndarray, np.ndarray]:
    """(version each request should be assigned, mask of requests to judge).

    The thresholds come from the changes the controller applied.  An arrival at the very
    instant of a change may be routed either way (same simulated time), so requests within
    a nanosecond of a change are not judged.
    """
    change_t = np.array([t for t, _, _ in controller.applied], dtype=np.float64)
    cand = np.array([0, *[c for _, c, _ in controller.applied]], dtype=np.int64)
    in_force = cand[np.searchsorted(change_t, plan.t_s, side="right")]
    to_candidate = plan.eligible & (plan.assign_bucket < in_force)
    judged = np.ones(plan.t_s.shape[0], dtype=bool)
    for t in change_t:
        judged &= np.abs(plan.t_s - t) > 1e-9
    return np.where(to_candidate, plan.candidate, plan.baseline), judged


# --- properties -------------------------------------------------------------------------------


def _accounting(spec: Spec) -> None:
    plan, controller = build(spec)
    rec = run_plan(plan, controller, seed=spec.engine_seed).records
    assert_accounted(plan, rec)
    # Routing is exactly what the controller asked for at each arrival time.
    expected, judged = expected_versions(plan, controller)
    assert np.array_equal(rec.version[judged], expected[judged])


@FAST
@given(specs())
def test_every_arrival_ends_once_and_routing_follows_the_controller(spec: Spec) -> None:
    _accounting(spec)


@pytest.mark.slow
@SLOW
@given(specs(max_n=600))
def test_every_arrival_ends_once_and_routing_follows_the_controller_full(spec: Spec) -> None:
    _accounting(spec)


def _tiny_capacity(spec: Spec) -> None:
    plan, controller = build(spec)
    rec = run_plan(plan, controller, seed=spec.engine_seed).records
    assert_accounted(plan, rec)
    # The stress shape really stresses: once 30 requests reach a server (service mean >= 5 ms
    # against a timeout <= 5 ms on one slot), some of them time out or are rejected.  A cache
    # that answers nearly everything (one user, a long TTL) is allowed to spare the servers.
    if (rec.cache == MISS).sum() >= 30:
        assert (rec.failure != NO_FAILURE).any()


@st.composite
def tiny_specs(draw: st.DrawFn) -> Spec:
    """One slot per version, service far slower than the timeout allows, a busy cache."""
    base = draw(specs(max_n=300))
    spec = dataclasses.replace(
        base,
        n=draw(st.integers(100, 300)),
        rate_per_s=draw(st.floats(500.0, 3000.0)),
        baseline_slots=1,
        candidate_slots=1,
        baseline_mean_ms=draw(st.floats(5.0, 30.0)),
        candidate_mean_ms=draw(st.floats(5.0, 30.0)),
        timeout_s=draw(st.floats(0.001, 0.005)),
        queue_limit=draw(st.integers(0, 2)),
        fallback=tuple(draw(st.permutations(FALLBACK_STEPS))),
        cache_enabled=True,
        cache_capacity=draw(st.integers(1, 5)),
    )
    return spec


@FAST
@given(tiny_specs())
def test_tiny_capacity_short_timeouts_and_fallback_chain_account_for_everything(
    spec: Spec,
) -> None:
    _tiny_capacity(spec)


@pytest.mark.slow
@SLOW
@given(tiny_specs())
def test_tiny_capacity_short_timeouts_and_fallback_chain_full(spec: Spec) -> None:
    _tiny_capacity(spec)


def _shadow_invisible(spec: Spec, mirror: int) -> None:
    """Same plan with and without mirroring: user-facing columns must be identical.

    The candidate gets ample capacity, so a shadow copy never queues and never delays a user
    request.  The mirror share is in force from the start and kept through every routing step,
    so both runs see the same sequence of candidate-weight changes (and cache flushes).
    """
    ample = dataclasses.replace(spec, candidate_slots=100_000)
    runs = []
    for share in (0, mirror):
        plan, controller = build(
            dataclasses.replace(ample, schedule=tuple((f, c, share) for f, c, _ in ample.schedule))
        )
        controller.routing = Routing(0, share)
        runs.append((plan, run_plan(plan, controller, seed=spec.engine_seed).records))
    (_, quiet), (plan, mirrored) = runs
    assert_accounted(plan, mirrored)
    assert not (quiet.shadow >= 0).any()
    for name in USER_COLUMNS:
        assert np.array_equal(getattr(quiet, name), getattr(mirrored, name)), (
            f"shadow traffic changed {name}"
        )


def baseline_only(spec: Spec) -> Spec:
    """Candidate threshold 0 throughout: every user is on the baseline."""
    return dataclasses.replace(spec, schedule=tuple((f, 0, m) for f, _, m in spec.schedule))


@FAST
@given(specs(with_faults=False), st.integers(1, BUCKETS))
def test_shadow_traffic_never_changes_what_baseline_users_see(spec: Spec, mirror: int) -> None:
    _shadow_invisible(baseline_only(spec), mirror)


@pytest.mark.slow
@SLOW
@given(specs(with_faults=False, max_n=600), st.integers(1, BUCKETS))
def test_shadow_traffic_never_changes_what_baseline_users_see_full(spec: Spec, mirror: int) -> None:
    _shadow_invisible(baseline_only(spec), mirror)


@FAST
@given(specs(with_faults=False), st.integers(1, BUCKETS))
def test_shadow_traffic_never_changes_what_candidate_users_see(spec: Spec, mirror: int) -> None:
    _shadow_invisible(spec, mirror)


@FAST
@given(specs(), st.integers(1, BUCKETS))
def test_shadow_traffic_never_changes_what_users_see_under_error_faults(
    spec: Spec, mirror: int
) -> None:
    spec = baseline_only(spec)
    spec = dataclasses.replace(
        spec,
        n=max(spec.n, 100),
        faults=(
            Fault(0, "error_burst", 0.0, 1.0, 1.0, 0.3),
            Fault(1, "error_burst", 0.0, 1.0, 1.0, 0.3),
        ),
    )
    _shadow_invisible(spec, mirror)


def test_mirror_only_step_does_not_flush_the_cache() -> None:
    # Regression: a mirror-only routing step once flushed a flush_on_change cache.
    rng = np.random.default_rng(11)
    t_s = poisson_times(1_000.0, 2_000, rng=rng)
    users = rng.integers(0, 50, 2_000).astype(np.int32)
    plan = make_plan(
        t_s,
        users=users,
        n_users=50,
        versions=[
            version("baseline", servers=4, mean_ms=2.0),
            version("candidate", servers=10_000),
        ],
        cache=CachePlan(True, 100, math.inf, "flush_on_change", 0.001),
    )
    half = float(t_s[1_000])
    quiet = run_plan(plan, ScheduleController(((half, 0, 0),)), seed=5)
    mirrored = run_plan(plan, ScheduleController(((half, 0, 5_000),)), seed=5)
    assert (mirrored.records.shadow >= 0).any()
    assert mirrored.flush_times_s == quiet.flush_times_s == []
    for name in USER_COLUMNS:
        assert np.array_equal(getattr(quiet.records, name), getattr(mirrored.records, name)), name


def test_stale_cache_fallback_under_versioned_keys_with_many_users() -> None:
    # Regression: version * n_users + user was once computed in int8.  One user (id 200
    # of 201), service 50 ms, timeout 10 ms: every request times out and walks the chain
    # stale_cache -> popular.
    t_s = np.array([0.1, 0.2, 0.3])
    plan = make_plan(
        t_s,
        users=np.full(3, 200),
        n_users=201,
        versions=[version("baseline", mean_ms=50.0)],
        timeout_s=0.010,
        fallback=("stale_cache", "popular"),
        cache=CachePlan(True, 10, math.inf, "versioned_keys", 0.001),
    )
    rec = run_plan(plan, seed=1).records
    assert_accounted(plan, rec)


def _sticky(spec: Spec) -> None:
    plan, controller = build(spec)
    rec = run_plan(plan, controller, seed=spec.engine_seed).records
    assert_accounted(plan, rec)
    on_candidate = rec.version == plan.candidate
    for user in np.unique(plan.user):
        seen = on_candidate[plan.user == user]  # in arrival order
        if seen.any():
            first = int(np.argmax(seen))
            assert seen[first:].all(), f"user {user} went back from candidate to baseline"


@FAST
@given(specs(ramp_only=True))
def test_assignment_survives_ramp_up(spec: Spec) -> None:
    _sticky(spec)


@pytest.mark.slow
@SLOW
@given(specs(ramp_only=True, max_n=600))
def test_assignment_survives_ramp_up_full(spec: Spec) -> None:
    _sticky(spec)


@FAST
@given(specs())
def test_versioned_keys_serve_only_the_assigned_version(spec: Spec) -> None:
    spec = dataclasses.replace(spec, cache_enabled=True, invalidation="versioned_keys")
    plan, controller = build(spec)
    rec = run_plan(plan, controller, seed=spec.engine_seed).records
    assert_accounted(plan, rec)
    served = rec.result == SERVED
    assert (rec.served_by[served] == rec.version[served]).all()
    assert not (rec.cache[served] == STALE).any()


@FAST
@given(specs())
def test_same_seed_same_bytes(spec: Spec) -> None:
    plan, controller = build(spec)
    first = run_plan(plan, controller, seed=spec.engine_seed)
    plan_again, controller_again = build(spec)
    second = run_plan(plan_again, controller_again, seed=spec.engine_seed)
    a, b = columns(first.records, RECORD_COLUMNS), columns(second.records, RECORD_COLUMNS)
    for name in RECORD_COLUMNS:
        assert a[name].tobytes() == b[name].tobytes(), f"{name} differs between runs"
    assert first.flush_times_s == second.flush_times_s
    if first.cache is not None and second.cache is not None:
        assert first.cache.stats == second.cache.stats


def test_fixed_controller_keeps_everything_on_the_baseline() -> None:
    # The trivial controller the validation suites use: nothing on the candidate, no shadow.
    t_s = poisson_times(500.0, 300, rng=np.random.default_rng(3))
    plan = make_plan(t_s, versions=[version("baseline"), version("candidate")])
    rec = run_plan(plan, FixedController(), seed=4).records
    assert_accounted(plan, rec)
    assert (rec.version == plan.baseline).all() and (rec.shadow == -1).all()
