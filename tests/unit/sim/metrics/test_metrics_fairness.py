"""Fairness by attribute: exposure shares and user-group differences against hand examples."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats as sps

from sim.metrics.fairness import group_ctr_deltas, group_exposure, level_shares, total_variation
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
