"""Each formula of the remembering users (``sim.remembering``) against a direct computation,
and their outcome metrics (``sim.metrics.retention``) against hand-built cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.metrics.retention import newcombe_difference, rollback_difference
from sim.records import DROPPED, SERVED
from sim.remembering import (
    MemoryParams,
    RememberingUsers,
    list_overlap,
    quality,
    return_probability,
    smooth_in_order,
    tilt_relevance,
)
from sim.remembering import _session_links as session_links
from sim.stats import wilson_interval
from sim.users import CascadeUsers

PARAMS = MemoryParams()


def test_return_probability_is_linear_in_satisfaction() -> None:
    s = np.linspace(0.0, 1.0, 11)
    p = MemoryParams(return_at_zero=0.3, return_at_one=0.9)
    np.testing.assert_allclose(return_probability(s, p), 0.3 + 0.6 * s)


def test_quality_matches_a_direct_computation() -> None:
    rng = np.random.default_rng(1)
    g = rng.random(500)
    latency = rng.uniform(0, 2_000, 500)
    overlap = rng.random(500)
    p = MemoryParams(relevant_click_probability=0.25, latency_threshold_ms=150,
                     latency_scale_ms=400, latency_weight=0.7, change_weight=0.4)  # fmt: skip
    expected = [
        min(1.0, max(0.0, min(1.0, gi / 0.25) - 0.7 * min(1.0, max(0.0, li - 150) / 400)
                     - 0.4 * (1 - oi)))
        for gi, li, oi in zip(g, latency, overlap, strict=True)
    ]  # fmt: skip
    np.testing.assert_allclose(quality(g, latency, overlap, p), expected)


def test_list_overlap_counts_shared_items_per_list_size() -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(-1, 30, (200, 10))
    b = rng.integers(-1, 30, (200, 10))
    expected = [len({x for x in ra if x >= 0} & set(rb)) for ra, rb in zip(a, b, strict=True)]
    # Duplicated ids inside a list count once per position holding them.
    direct = [
        sum(1 for x in ra if x >= 0 and x in set(rb)) / 10 for ra, rb in zip(a, b, strict=True)
    ]
    np.testing.assert_allclose(list_overlap(a, b), direct)
    assert all(e <= d * 10 for e, d in zip(expected, direct, strict=True))


def test_tilt_relevance_shifts_the_logit_by_taste_dot_factor() -> None:
    rng = np.random.default_rng(3)
    r = rng.uniform(0.01, 0.99, (50, 5))
    taste = rng.normal(size=(50, 4))
    factors = rng.normal(size=(50, 5, 4))
    shift = np.array([[factors[n, k] @ taste[n] for k in range(5)] for n in range(50)])
    expected = 1 / (1 + np.exp(-(np.log(r / (1 - r)) + shift)))
    np.testing.assert_allclose(tilt_relevance(r, taste, factors), expected, rtol=1e-12)
    edge = tilt_relevance(np.array([[0.0, 1.0]]), taste[:1], factors[:1, :2])
    assert edge.tolist() == [[0.0, 1.0]]


@given(
    who=st.lists(st.integers(0, 4), min_size=0, max_size=60),
    rate=st.floats(0.01, 1.0),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=60, deadline=None, derandomize=True, database=None)
def test_smooth_in_order_is_the_sequential_update(who: list[int], rate: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.random(len(who))
    state = rng.random(5)
    direct = state.copy()
    after = []
    for u, xi in zip(who, x, strict=True):
        direct[u] = (1 - rate) * direct[u] + rate * xi
        after.append(direct[u])
    got = smooth_in_order(state, np.array(who, np.int64), x, rate)
    np.testing.assert_allclose(got, after, rtol=1e-12)
    np.testing.assert_allclose(state, direct, rtol=1e-12)


def test_session_links_match_a_loop() -> None:
    rng = np.random.default_rng(4)
    session_user = rng.integers(0, 6, 40)
    session = np.sort(rng.integers(0, 40, 300)).astype(np.int32)
    rng.shuffle(session[100:200])  # sessions interleave in time
    user = session_user[session].astype(np.int32)
    first, previous, previous_last = session_links(user, session)
    seen: dict[int, int] = {}
    first_row: dict[int, int] = {}
    last_row: dict[int, int] = {}
    for i, s in enumerate(session):
        assert previous[i] == seen.get(int(s), -1)
        assert first[i] == (int(s) not in seen)
        seen[int(s)] = i
        first_row.setdefault(int(s), i)
        last_row[int(s)] = i
    for i in range(len(session)):
        if not first[i]:
            assert previous_last[i] == -1
            continue
        mine = sorted((first_row[s], s) for s in first_row if session_user[s] == user[i])
        before = [s for f, s in mine if f < i]
        assert previous_last[i] == (last_row[before[-1]] if before else -1)


def _users(params: MemoryParams, n_requests: int, *, factors: np.ndarray | None = None):
    user = np.zeros(n_requests, np.int32)
    session = np.zeros(n_requests, np.int32)
    return RememberingUsers(
        params,
        CascadeUsers(position_decay=1.0, abandon_after_ms=1e9, abandon_per_100ms=0.0),
        user=np.arange(n_requests, dtype=np.int32) if factors is None else user,
        session=np.arange(n_requests, dtype=np.int32) if factors is None else session,
        n_users=n_requests,
        item_unit_factors=factors,
        rng=np.random.default_rng(0),
    )


def test_dwell_and_conversions_follow_their_laws() -> None:
    """One list of one item with click probability r: log-dwell is normal around
    ln(median) + γ (r − ½) with σ_d; conversions per click are c · r (99 % intervals)."""
    n, r = 40_000, 0.6
    p = MemoryParams(drift_rate=0.0, dwell_median_s=20.0, dwell_relevance_gain=2.0,
                     dwell_sigma=0.5, conversion_per_relevance=0.5)  # fmt: skip
    users = _users(p, n)
    relevance = np.full((n, 1), r)
    items = np.zeros((n, 1), np.int64)
    result = np.full(n, SERVED, np.uint8)
    clicks, _pos, _ = users.respond(
        0, n, relevance, items, np.zeros(n, np.int8), np.zeros(n, np.float32), result,
        lambda codes, who: np.zeros((codes.size, 1), np.int64), rng=np.random.default_rng(5),
    )  # fmt: skip
    clicked = clicks > 0
    log_dwell = np.log(users.dwell_s[clicked].astype(np.float64))
    centre = math.log(20.0) + 2.0 * (r - 0.5)
    half = 2.576 * 0.5 / math.sqrt(clicked.sum())
    assert abs(log_dwell.mean() - centre) < half
    assert abs(log_dwell.std() - 0.5) < 0.01
    conv = wilson_interval(int(users.converted[clicked].sum()), int(clicked.sum()), 0.99)
    assert conv.low <= 0.5 * r <= conv.high
    assert not users.dwell_s[~clicked].any() and not users.converted[~clicked].any()
    click_rate = wilson_interval(int(clicked.sum()), n, 0.99)
    assert click_rate.low <= r <= click_rate.high


def test_satisfaction_follows_the_quality_of_each_request() -> None:
    """A dropped request is a list not looked at (q = 0 here), a served one adds its quality."""
    p = MemoryParams(drift_rate=0.0, satisfaction_rate=0.5, satisfaction_start=0.5,
                     relevant_click_probability=0.5, latency_threshold_ms=100,
                     latency_scale_ms=100, latency_weight=1.0)  # fmt: skip
    users = _users(p, 3)
    relevance = np.array([[0.25], [0.25], [0.25]])
    latency = np.array([0.0, 150.0, 0.0], np.float32)
    result = np.array([SERVED, SERVED, DROPPED], np.uint8)
    users.respond(
        0, 3, relevance, np.zeros((3, 1), np.int64), np.array([0, 0, -2], np.int8), latency,
        result, lambda codes, who: np.zeros((codes.size, 1), np.int64),
        rng=np.random.default_rng(0),
    )  # fmt: skip
    # q = 0.25 / 0.5 = 0.5; then 0.5 − 1.0 · 0.5 = 0; dropped: 0.
    np.testing.assert_allclose(users.satisfaction, [0.5, 0.25, 0.25])


def test_taste_moves_toward_clicked_items_and_stays_within_its_strength() -> None:
    factors = np.eye(3)
    p = MemoryParams(drift_rate=0.5, drift_strength=2.0)
    users = _users(p, 40, factors=factors)
    relevance = np.full((40, 1), 0.99)
    items = np.zeros((40, 1), np.int64)  # always item 0
    users.respond(
        0, 40, relevance, items, np.zeros(40, np.int8), np.zeros(40, np.float32),
        np.full(40, SERVED, np.uint8), lambda codes, who: np.zeros((codes.size, 1), np.int64),
        rng=np.random.default_rng(1),
    )  # fmt: skip
    taste = users.taste[0]
    assert taste[0] > 1.9 and abs(taste[1]) < 1e-12 and np.linalg.norm(taste) <= 2.0 + 1e-12
    # The one session saw the taste it started with (zero): no tilt inside it.
    assert users.session_taste[0].tolist() == [0.0, 0.0, 0.0]


def test_newcombe_matches_the_published_example() -> None:
    """Newcombe (1998), Table II example (a): 56/70 vs 48/80, method 10: 0.0524 to 0.3339."""
    interval = newcombe_difference(48, 80, 56, 70)
    assert interval.estimate == pytest.approx(0.2)
    assert interval.low == pytest.approx(0.0524, abs=5e-5)
    assert interval.high == pytest.approx(0.3339, abs=5e-5)


def test_rollback_difference_is_switch_minus_drain() -> None:
    drain = {"users": 100, "retained_users": 60, "satisfaction_end": 0.4,
             "satisfaction_end_se": 0.03}  # fmt: skip
    switch = {"users": 100, "retained_users": 70, "satisfaction_end": 0.5,
              "satisfaction_end_se": 0.04}  # fmt: skip
    diff = rollback_difference(drain, switch)
    assert diff["satisfaction_end"] == pytest.approx(0.1)
    assert diff["satisfaction_end_ci95"] == pytest.approx(
        [0.1 - 1.959964 * 0.05, 0.1 + 1.959964 * 0.05]
    )
    assert diff["retained"] == pytest.approx(0.1)
    kept = newcombe_difference(60, 100, 70, 100)
    assert diff["retained_ci95"] == [kept.low, kept.high]
