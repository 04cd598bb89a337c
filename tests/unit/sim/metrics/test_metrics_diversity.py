"""Diversity metrics: hand examples and scipy.spatial.distance.pdist as the pairwise reference."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.spatial.distance import pdist

from replay.errors import UserInputError
from sim.metrics import (
    average_recommended_popularity,
    catalogue_coverage,
    exposure_counts,
    exposure_gini,
    genre_intra_list_diversity,
    gini,
    intra_list_diversity,
    novelty,
)

# item 0 → (1, 0), item 1 → (0, 1), item 2 → (1, 1), item 3 → (−1, 0), item 4 → (0, 0)
FACTORS = np.array([[1, 0], [0, 1], [1, 1], [-1, 0], [0, 0]], dtype=np.float32)


def test_intra_list_diversity_by_hand() -> None:
    # [0, 1, 2]: cos(0,1) = 0, cos(0,2) = cos(1,2) = 1/√2
    #   ILD = (1 + 2 (1 − 0.70711)) / 3 = 1.58579 / 3 = 0.528595
    # [0, 3]: opposite vectors, cos = −1 -> distance 2
    # [0, 4]: a zero vector has cosine 0 with everything -> distance 1
    # [1]: one item, no pair -> NaN
    items = np.array([[0, 1, 2], [0, 3, -1], [0, 4, -1], [1, -1, -1]], dtype=np.int32)
    ild = intra_list_diversity(items, FACTORS)
    assert ild[0] == pytest.approx((1 + 2 * (1 - 1 / math.sqrt(2))) / 3)
    assert ild[1] == pytest.approx(2.0)
    assert ild[2] == pytest.approx(1.0)
    assert math.isnan(ild[3])


def test_intra_list_diversity_equals_scipy_pdist_cosine() -> None:
    # Library: scipy.spatial.distance.pdist(metric="cosine") is 1 − cos for every pair.
    rng = np.random.default_rng(7)
    factors = rng.normal(size=(200, 16)).astype(np.float32)
    items = np.stack([rng.choice(200, 10, replace=False) for _ in range(50)]).astype(np.int32)
    items[:5, 7:] = -1
    ours = intra_list_diversity(items, factors)
    for row, value in zip(items, ours, strict=True):
        ref = pdist(factors[row[row >= 0]].astype(np.float64), metric="cosine").mean()
        assert value == pytest.approx(ref, abs=1e-12)


def test_genre_ild_by_hand_and_equals_scipy_pdist_jaccard() -> None:
    # genres: item 0 {0}, item 1 {0, 1}, item 2 {2}, item 3 {} , item 4 {}
    genres = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]], dtype=np.int8)
    # [0, 1, 2]: d(0,1) = 1 − 1/2, d(0,2) = 1, d(1,2) = 1 -> 2.5 / 3
    # [3, 4]: two empty genre sets are equal -> 0
    items = np.array([[0, 1, 2], [3, 4, -1]], dtype=np.int32)
    ild = genre_intra_list_diversity(items, sp.csr_matrix(genres))
    assert ild[0] == pytest.approx(2.5 / 3)
    assert ild[1] == 0.0
    # Library: scipy.spatial.distance.pdist(metric="jaccard") on boolean genre vectors.
    rng = np.random.default_rng(9)
    many = (rng.random((100, 6)) < 0.3).astype(np.int8)
    lists = np.stack([rng.choice(100, 8, replace=False) for _ in range(30)]).astype(np.int32)
    ours = genre_intra_list_diversity(lists, many)
    for row, value in zip(lists, ours, strict=True):
        ref = pdist(many[row].astype(bool), metric="jaccard").mean()
        assert value == pytest.approx(ref, abs=1e-12)


def test_coverage_and_exposure_by_hand() -> None:
    items = np.array([[0, 1], [1, 2], [4, -1]], dtype=np.int32)
    # items shown: {0, 1, 2, 4} of 5 -> 0.8; with the last list unused -> {0, 1, 2} -> 0.6
    assert catalogue_coverage(items, 5) == pytest.approx(0.8)
    assert catalogue_coverage(items, 5, weights=[1, 2, 0]) == pytest.approx(0.6)
    # exposure with weights 1, 2, 0: item 0: 1, item 1: 1 + 2, item 2: 2
    assert exposure_counts(items, 5, weights=[1, 2, 0]).tolist() == [1.0, 3.0, 2.0, 0.0, 0.0]


def test_gini_by_hand() -> None:
    # [1, 2, 3]: Σ (2i − n − 1) x_i = −2·1 + 0·2 + 2·3 = 4;  n Σx = 18 -> 2/9
    # mean-absolute-difference form: Σ_ij |x_i − x_j| / (2 n² μ) = 8 / 36 = 2/9
    assert gini([3, 1, 2]) == pytest.approx(2 / 9)
    assert gini([5, 5, 5, 5]) == 0.0
    assert gini([0, 0, 0, 1]) == pytest.approx(0.75)  # 1 − 1/n: all on one
    # exposure: items 0..3 shown 1, 3, 2, 0 times of a 4-item catalogue
    items = np.array([[0, 1], [1, 2], [1, 2]], dtype=np.int32)
    x = np.array([1.0, 3.0, 2.0, 0.0])
    mad = np.abs(x[:, None] - x[None, :]).sum() / (2 * 16 * x.mean())
    assert exposure_gini(items, 4) == pytest.approx(mad)


def test_novelty_and_popularity_by_hand() -> None:
    popularity = np.array([6, 2, 0, 0])
    # shares 0.75, 0.25 -> (−log2 0.75 − log2 0.25) / 2 = (0.415037 + 2) / 2 = 1.207519
    items = np.array([[0, 1], [1, -1], [-1, -1]], dtype=np.int32)
    nov = novelty(items, popularity)
    assert nov[0] == pytest.approx(1.2075187, abs=1e-7)
    assert nov[1] == pytest.approx(2.0)
    assert math.isnan(nov[2])
    # pseudo_count 1: shares (7, 3, 1, 1) / 12; item 2 -> −log2(1/12) = 3.584963
    assert novelty(np.array([[2]]), popularity, pseudo_count=1.0)[0] == pytest.approx(math.log2(12))
    arp = average_recommended_popularity(items, popularity)
    assert arp[:2].tolist() == [4.0, 2.0] and math.isnan(arp[2])


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            lambda: novelty(np.array([[2]]), [6, 2, 0]),
            "novelty: popularity[2] must be > 0 for an item that is shown, got 0.0"
            " (pass pseudo_count",
        ),
        (lambda: gini([0, 0]), "gini: values must be of positive sum, got 0.0"),
        (lambda: gini([-1, 2]), "gini: values must be non-negative, got -1.0"),
        (
            lambda: intra_list_diversity(np.array([0, 1]), FACTORS),
            "intra_list_diversity: items.shape must be [n_lists, K] (2-D), got (2,)",
        ),
        (
            lambda: intra_list_diversity(np.array([[0.0, 1.0]]), FACTORS),
            "intra_list_diversity: items.dtype must be an integer type, got 'float64'",
        ),
        (
            lambda: intra_list_diversity(np.array([[0, -2]]), FACTORS),
            "intra_list_diversity: items must be item ids >= 0 or -1 for an empty slot, got -2",
        ),
        (
            lambda: catalogue_coverage(np.array([[0]]), 3, weights=[1, 1]),
            "exposure_counts: weights.shape must be (1,), one weight per list, got (2,)",
        ),
        (lambda: catalogue_coverage(np.array([[0]]), 0), "exposure_counts: n_items must be"),
    ],
)
def test_invalid_inputs_raise_user_input_error(call: Any, expected: str) -> None:
    with pytest.raises(UserInputError) as info:
        call()
    assert str(info.value).startswith(expected)
