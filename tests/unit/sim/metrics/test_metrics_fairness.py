"""Fairness by attribute: exposure shares and user-group differences against hand examples."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from sim.metrics.fairness import (
    group_ctr_deltas,
    group_exposure,
    level_shares,
    paired_share_change,
    total_variation,
)
from sim.stats import clustered_ratio


def test_level_shares_split_multi_valued_items_equally() -> None:
    shares = level_shares(np.array([[1, 0], [1, 1], [0, 0]]))
    assert shares.tolist() == [[1.0, 0.0], [0.5, 0.5], [0.0, 0.0]]


def test_total_variation_by_hand() -> None:
    assert total_variation([0.5, 0.5, 0.0], [0.2, 0.3, 0.5]) == pytest.approx(0.5)
    assert total_variation([1, 0], [1, 0]) == 0.0


def test_group_exposure_by_hand() -> None:
    # items 0, 1 of group A, item 2 of both groups, item 3 of B
    shares = level_shares(np.array([[1, 0], [1, 0], [1, 1], [0, 1]]))
    lists = np.array([[0, 2], [3, -1]])  # user 0 sees 0 and 2; user 1 sees 3 (one empty slot)
    weights = np.array([2.0, 1.0])  # user 0 made two requests
    popularity = np.array([4.0, 0.0, 2.0, 2.0])
    e = group_exposure(lists, weights, shares, popularity)
    # slots: user 0: 2 x 2 = 4 (A: 2 + 1, B: 1); user 1: 1 (B)  -> A 3/5, B 2/5
    assert e.exposure_share.tolist() == pytest.approx([0.6, 0.4])
    assert e.slots == 5.0 and e.users == 2
    # catalogue: A = (1 + 1 + 0.5) / 4, B = (0.5 + 1) / 4
    assert e.catalogue_share.tolist() == pytest.approx([0.625, 0.375])
    # popularity: A = (4 + 1) / 8, B = (1 + 2) / 8
    assert e.popularity_share.tolist() == pytest.approx([0.625, 0.375])
    # the interval is the delta method over users (clustered_ratio)
    expected = clustered_ratio([4.0, 1.0], [3.0, 0.0])
    assert e.exposure[0] == expected


def test_group_ctr_deltas_by_hand_and_bonferroni_width() -> None:
    rng = np.random.default_rng(5)
    n = 4_000
    user = rng.integers(0, 400, n)
    version = (user % 2).astype(np.int64)  # users alternate between versions
    clicks = (rng.random(n) < np.where(version == 1, 0.2, 0.1)).astype(np.int64)
    group = user % 3  # three groups, each with both versions
    membership = sp.csr_matrix((np.ones(400), (np.arange(400), np.arange(400) % 3)), shape=(400, 3))
    deltas = group_ctr_deltas(
        user, version, clicks, membership, versions=(0, 1), baseline=0, candidate=1
    )
    assert [d.group for d in deltas] == [0, 1, 2]
    for d in deltas:
        mine = group == d.group
        base = mine & (version == 0)
        cand = mine & (version == 1)
        assert d.requests == int(mine.sum())
        assert d.ctr[0].mean == pytest.approx(clicks[base].mean())
        assert d.ctr[1].mean == pytest.approx(clicks[cand].mean())
        assert d.difference is not None and d.adjusted is not None
        assert d.difference.estimate == pytest.approx(clicks[cand].mean() - clicks[base].mean())
        # Bonferroni over 3 groups: each adjusted interval at 1 - 0.05 / 3
        ratio = (d.adjusted.high - d.adjusted.low) / (d.difference.high - d.difference.low)
        assert ratio == pytest.approx(sps.norm.ppf(1 - 0.05 / 6) / sps.norm.ppf(0.975))


def test_group_without_the_candidate_has_no_difference() -> None:
    user = np.array([0, 0, 1, 1, 2, 2])
    version = np.array([0, 0, 1, 1, 0, 0])
    clicks = np.array([1, 0, 1, 1, 0, 0])
    membership = sp.csr_matrix(np.array([[1, 0], [1, 0], [0, 1]]))
    deltas = group_ctr_deltas(
        user, version, clicks, membership, versions=(0, 1), baseline=0, candidate=1
    )
    assert deltas[0].difference is not None
    assert deltas[1].difference is None and deltas[1].ctr[0].mean == 0.0


def test_paired_share_change_by_hand() -> None:
    shares = level_shares(np.array([[1, 0], [0, 1], [0, 1]]))  # item 0: A; items 1, 2: B
    base = np.array([[0, 1], [0, 2], [1, 2]])
    cand = np.array([[0, 0], [1, 2], [1, 2]])
    weights = np.array([1.0, 1.0, 2.0])
    changes = paired_share_change(base, cand, weights, shares)
    # A: baseline (1 + 1 + 0) / 8, candidate (2 + 0 + 0) / 8
    assert changes[0].estimate == pytest.approx(0.0)
    assert changes[1].estimate == pytest.approx(0.0)
    # per user d_u = x_b - R_b n_b - (x_a - R_a n_a) over n-bar 8/3: user 0 +1, user 1 -1, 2: 0
    e = np.array([1.0, -1.0, 0.0]) / (8 / 3)
    half = sps.norm.ppf(0.975) * np.sqrt(e.var(ddof=1) / 3)
    assert changes[0].high == pytest.approx(half)
    same = paired_share_change(base, base, weights, shares)
    assert all(c.estimate == 0.0 and c.low == c.high == 0.0 for c in same)


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    users=st.integers(1, 30),
    groups=st.integers(1, 4),
)
def test_exposure_shares_and_paired_changes_add_up(seed: int, users: int, groups: int) -> None:
    rng = np.random.default_rng(seed)
    n_items = 12
    membership = np.zeros((n_items, groups), np.int8)
    membership[np.arange(n_items), rng.integers(0, groups, n_items)] = 1
    extra = rng.random((n_items, groups)) < 0.2  # some items in several groups
    shares = level_shares(np.maximum(membership, extra.astype(np.int8)))
    a = rng.integers(0, n_items, (users, 3))
    b = rng.integers(0, n_items, (users, 3))
    weights = rng.integers(1, 5, users).astype(np.float64)
    exposure = group_exposure(a, weights, shares, np.ones(n_items))
    assert exposure.exposure_share.sum() == pytest.approx(1.0)
    changes = paired_share_change(a, b, weights, shares)
    assert sum(c.estimate for c in changes) == pytest.approx(0.0, abs=1e-12)
    own = group_exposure(b, weights, shares, np.ones(n_items)).exposure_share
    assert [c.estimate for c in changes] == pytest.approx(own - exposure.exposure_share)


def test_paired_change_interval_covers_the_true_change() -> None:
    # Ten items, group = item % 2.  Baseline lists draw 3 items uniformly (share of group 0:
    # 1/2); the candidate keeps the baseline's first item and draws 2 with group 0 twice as
    # likely (2/3), so its share is (1/2 + 2 * 2/3) / 3 and the lists are correlated.
    rng = np.random.default_rng(11)
    shares = level_shares(np.eye(2, dtype=np.int8)[np.arange(10) % 2])
    truth = (0.5 + 2 * 2 / 3) / 3 - 0.5
    tilted = np.where(np.arange(10) % 2 == 0, 2.0, 1.0)
    replications, covered = 400, 0
    for _ in range(replications):
        base = rng.integers(0, 10, (150, 3))
        cand = base.copy()
        cand[:, 1:] = rng.choice(10, (150, 2), p=tilted / tilted.sum())
        weights = rng.integers(1, 6, 150).astype(np.float64)
        covered += paired_share_change(base, cand, weights, shares)[0].contains(truth)
    # 95 % intervals: the coverage is consistent with 0.95 (binomial test, not a pinned count)
    assert sps.binomtest(covered, replications, 0.95).pvalue > 0.001


def test_bonferroni_worst_group_keeps_the_family_wise_error() -> None:
    # A/A: no group differs.  Plain 95 % intervals find "a harmed group" among 8 far more
    # often than 5 %; the corrected ones at most about 5 % of the time.
    rng = np.random.default_rng(3)
    n_users, groups, replications = 800, 8, 300
    membership = sp.csr_matrix(
        (np.ones(n_users), (np.arange(n_users), np.arange(n_users) % groups)),
        shape=(n_users, groups),
    )
    plain = corrected = 0
    for _ in range(replications):
        user = rng.integers(0, n_users, 6_000)
        version = rng.integers(0, 2, n_users)[user]  # each user on one version
        clicks = (rng.random(user.size) < 0.1).astype(np.int64)
        deltas = group_ctr_deltas(
            user, version, clicks, membership, versions=(0, 1), baseline=0, candidate=1
        )
        assert all(d.difference is not None and d.adjusted is not None for d in deltas)
        plain += any(not d.difference.contains(0.0) for d in deltas if d.difference is not None)
        corrected += any(not d.adjusted.contains(0.0) for d in deltas if d.adjusted is not None)
    assert sps.binomtest(corrected, replications, 0.05, alternative="greater").pvalue > 0.001
    assert plain > 2 * corrected and plain / replications > 0.15
