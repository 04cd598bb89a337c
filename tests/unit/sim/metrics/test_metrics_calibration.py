"""Calibration metrics: ECE and reliability bins (vs scikit-learn), Steck's KL (vs scipy)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

from replay.errors import UserInputError
from sim.metrics import (
    calibration_slope,
    expected_calibration_error,
    genre_calibration_kl,
    genre_shares,
    list_genre_distribution,
    pseudo_genres,
    reliability_diagram,
    steck_kl,
    user_genre_distribution,
)


def test_ece_by_hand() -> None:
    # 15 bins (b/15, (b+1)/15].  0.1·15 = 1.5 -> bin 1; 0.9·15 = 13.5 -> bin 13.
    # bin 1: mean predicted 0.1, observed 1/2 -> |0.4| · 2/4 = 0.2
    # bin 13: mean predicted 0.9, observed 2/2 -> |0.1| · 2/4 = 0.05       ECE = 0.25
    p = [0.1, 0.1, 0.9, 0.9]
    y = [0, 1, 1, 1]
    assert expected_calibration_error(p, y) == pytest.approx(0.25)


def test_ece_is_zero_for_perfectly_calibrated_bins() -> None:
    # Bin 7 ((7/15, 8/15]) holds four predictions of 0.5 and two clicks.
    assert expected_calibration_error([0.5] * 4, [1, 0, 1, 0]) == 0.0


def test_reliability_bins_are_right_closed_with_zero_in_the_first() -> None:
    # 0 and exactly 1/15 go to bin 0; just above 1/15 to bin 1; 1.0 to the last bin.
    diagram = reliability_diagram([0.0, 1 / 15, 1 / 15 + 1e-9, 1.0], [0, 0, 1, 1])
    assert diagram.count.tolist() == [2, 1] + [0] * 12 + [1]
    assert diagram.lower[1] == pytest.approx(1 / 15) and diagram.upper[-1] == 1.0
    assert diagram.mean_predicted[0] == pytest.approx(1 / 30)
    assert diagram.observed_rate.tolist()[:2] == [0.0, 1.0]
    assert math.isnan(diagram.mean_predicted[5]) and math.isnan(diagram.observed_rate[5])


@pytest.mark.parametrize("n_bins", [5, 15])
def test_reliability_diagram_equals_sklearn_calibration_curve(n_bins: int) -> None:
    # Library: sklearn.calibration.calibration_curve(strategy="uniform") drops empty bins.
    calibration = pytest.importorskip("sklearn.calibration")
    rng = np.random.default_rng(11)
    p = rng.beta(2, 5, 3000)
    p[:30] = np.arange(30) / 15 % 1.0  # values exactly on bin edges
    y = (rng.random(3000) < p).astype(np.int8)
    prob_true, prob_pred = calibration.calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
    diagram = reliability_diagram(p, y, n_bins=n_bins)
    filled = diagram.count > 0
    np.testing.assert_allclose(diagram.observed_rate[filled], prob_true, rtol=1e-12)
    np.testing.assert_allclose(diagram.mean_predicted[filled], prob_pred, rtol=1e-12)
    # ECE from the same bins: Σ |B|/n · |mean predicted − observed|
    ece = (diagram.count[filled] / 3000 * np.abs(prob_pred - prob_true)).sum()
    assert expected_calibration_error(p, y, n_bins=n_bins) == pytest.approx(ece, rel=1e-12)


@pytest.mark.parametrize("n_bins", [5, 10])
def test_equal_mass_bins_and_ece_equal_sklearn_quantile_strategy(n_bins: int) -> None:
    calibration = pytest.importorskip("sklearn.calibration")
    rng = np.random.default_rng(12)
    # The quick start's case: every prediction within 3-6.5 %, one equal-width bin.
    p = rng.uniform(0.03, 0.065, 4000)
    p[:200] = 0.05  # ties stay in one bin, as in sklearn
    y = (rng.random(4000) < 0.02 + 0.5 * (p - 0.03)).astype(np.int8)
    prob_true, prob_pred = calibration.calibration_curve(y, p, n_bins=n_bins, strategy="quantile")
    diagram = reliability_diagram(p, y, n_bins=n_bins, strategy="quantile")
    filled = diagram.count > 0
    np.testing.assert_allclose(diagram.observed_rate[filled], prob_true, rtol=1e-12)
    np.testing.assert_allclose(diagram.mean_predicted[filled], prob_pred, rtol=1e-12)
    ece = (diagram.count[filled] / p.size * np.abs(prob_pred - prob_true)).sum()
    got = expected_calibration_error(p, y, n_bins=n_bins, strategy="quantile")
    assert got == pytest.approx(ece, rel=1e-12)
    # Equal-width bins see one bin and only the overall means.
    assert (reliability_diagram(p, y).count > 0).sum() == 1
    assert expected_calibration_error(p, y) == pytest.approx(abs(p.mean() - y.mean()))


def test_equal_mass_bins_hold_about_equal_counts() -> None:
    p = np.random.default_rng(1).random(1000)
    counts = reliability_diagram(p, np.zeros(1000), n_bins=10, strategy="quantile").count
    assert counts.tolist() == [100] * 10


def test_calibration_slope_equals_an_unpenalised_logistic_fit() -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(5)
    p = rng.beta(2, 30, 20_000)
    # True model: logit P(y) = -0.3 + 0.6 logit(p): over-confident predictions.
    x = np.log(p / (1 - p))
    y = (rng.random(p.size) < 1 / (1 + np.exp(-(-0.3 + 0.6 * x)))).astype(np.int8)
    fit = calibration_slope(p, y)
    reference = linear_model.LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000)
    reference.fit(x[:, None], y)
    assert fit.slope == pytest.approx(float(reference.coef_[0, 0]), rel=1e-5)
    assert fit.intercept == pytest.approx(float(reference.intercept_[0]), rel=1e-5, abs=1e-6)
    assert fit.slope_ci_low < 0.6 < fit.slope_ci_high
    assert fit.n == p.size


def test_calibration_slope_of_calibrated_predictions_covers_one() -> None:
    # 200 seeds: the 95 % Wald interval must cover slope 1 in about 95 % of them.
    covered = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        p = rng.uniform(0.02, 0.3, 2000)
        y = (rng.random(p.size) < p).astype(np.int8)
        fit = calibration_slope(p, y)
        covered += fit.slope_ci_low <= 1.0 <= fit.slope_ci_high
    # Binomial(200, 0.95): 95 % of runs fall in [184, 196]; allow a little more.
    assert 182 <= covered <= 198


def test_anti_calibrated_predictions_have_a_negative_slope() -> None:
    rng = np.random.default_rng(2)
    p = rng.uniform(0.03, 0.07, 20_000)
    y = (rng.random(p.size) < 0.1 - p).astype(np.int8)  # higher prediction, fewer clicks
    fit = calibration_slope(p, y)
    assert fit.slope_ci_high < 0


@pytest.mark.parametrize(
    ("p", "y"),
    [([0.1, 0.1, 0.1, 0.1], [0, 1, 0, 1]), ([0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0]), ([0.5], [1])],
)
def test_calibration_slope_is_undefined_without_spread(p: list[float], y: list[int]) -> None:
    fit = calibration_slope(p, y)
    assert math.isnan(fit.slope) and math.isnan(fit.intercept) and fit.n == len(p)


# Steck's example catalogue: item 0 {g0}, item 1 {g0, g1}, item 2 {g2}, item 3 {g1}.
GENRES = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 0]], dtype=np.int8)


def test_genre_shares_split_an_item_equally_over_its_genres() -> None:
    shares = genre_shares(sp.csr_matrix(GENRES))
    np.testing.assert_allclose(shares[1], [0.5, 0.5, 0.0])
    assert genre_shares(np.zeros((2, 3))).sum() == 0.0


def test_steck_kl_by_hand() -> None:
    # history {0, 1}: mass [1 + 0.5, 0.5, 0] -> p = [0.75, 0.25, 0]
    # list [2, 3]:   mass [0, 1, 1]          -> q = [0, 0.5, 0.5]
    # q̃ = 0.99 q + 0.01 p = [0.0075, 0.4975, 0.495]
    # KL = 0.75 ln(0.75/0.0075) + 0.25 ln(0.25/0.4975) = 3.453878 − 0.172034 = 3.281844
    history = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]))
    items = np.array([[2, 3], [1, 0], [0, -1]], dtype=np.int32)
    kl = genre_calibration_kl(items, history, GENRES)
    assert kl[0] == pytest.approx(3.281844, abs=1e-6)
    assert kl[1] == pytest.approx(0.0, abs=1e-15)  # the list has the history's proportions
    assert math.isnan(kl[2])  # no history, no p


def test_steck_kl_equals_scipy_entropy_of_p_and_mixed_q() -> None:
    # Library: scipy.stats.entropy(p, q̃) is KL(p ‖ q̃) in nats.
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.ones(6) * 0.5, size=20)
    q = rng.dirichlet(np.ones(6) * 0.5, size=20)
    q[:, 0] = 0.0
    q /= q.sum(axis=1, keepdims=True)
    ours = steck_kl(p, q, alpha=0.01)
    ref = [stats.entropy(p[i], 0.99 * q[i] + 0.01 * p[i]) for i in range(20)]
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_user_and_list_distributions_use_weights() -> None:
    shares = genre_shares(GENRES)
    # weights 3 and 1 on items 0 and 3: mass [3, 1, 0] -> [0.75, 0.25, 0]
    p = user_genre_distribution(sp.csr_matrix(np.array([[3.0, 0, 0, 1.0]])), shares)
    np.testing.assert_allclose(p, [[0.75, 0.25, 0.0]])
    # rank weights 1, 0: only the first item counts
    q = list_genre_distribution(np.array([[1, 2]]), shares, rank_weights=[1.0, 0.0])
    np.testing.assert_allclose(q, [[0.5, 0.5, 0.0]])


def test_pseudo_genres_recover_separated_directions() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[5, 0, 0], [0, 5, 0], [0, 0, 5]], dtype=np.float64)
    truth = np.repeat(np.arange(3), 40)
    factors = centres[truth] * rng.uniform(0.5, 2.0, (120, 1)) + rng.normal(0, 0.3, (120, 3))
    one_hot = pseudo_genres(factors, n_genres=3, rng=np.random.default_rng(4))
    assert one_hot.shape == (120, 3) and (one_hot.sum(axis=1) == 1).all()
    labels = one_hot.argmax(axis=1)
    # The same partition as the truth, whatever the cluster numbering.
    assert len({(int(t), int(label)) for t, label in zip(truth, labels, strict=True)}) == 3
    again = pseudo_genres(factors, n_genres=3, rng=np.random.default_rng(4))
    assert np.array_equal(one_hot, again)


def test_pseudo_genres_plug_into_steck_kl() -> None:
    rng = np.random.default_rng(1)
    factors = rng.normal(size=(50, 4))
    genres = pseudo_genres(factors, n_genres=5, rng=rng)
    history = sp.random(8, 50, density=0.2, random_state=3, format="csr")
    items = np.tile(np.arange(5, dtype=np.int32), (8, 1))
    kl = genre_calibration_kl(items, history, genres)
    assert kl.shape == (8,)
    assert np.all((kl[np.isfinite(kl)] >= 0) & (kl[np.isfinite(kl)] <= math.log(100) + 1e-12))


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            lambda: expected_calibration_error([0.5, 1.2], [0, 1]),
            "expected_calibration_error: p_pred must be in [0, 1] everywhere, got 1.2",
        ),
        (
            lambda: expected_calibration_error([0.5], [0, 1]),
            "expected_calibration_error: outcome.shape[0] must be equal to p_pred.shape[0] = 1,"
            " got 2",
        ),
        (
            lambda: reliability_diagram([0.5], [1], n_bins=0),
            "reliability_diagram: n_bins must be an integer >= 1, got 0",
        ),
        (
            lambda: steck_kl([[1.0]], [[1.0]], alpha=0.0),
            "steck_kl: alpha must be in (0, 1), got 0.0",
        ),
        (
            lambda: genre_shares(np.array([[2, 0]])),
            "genre_shares: genres must be a 0/1 matrix, got 2.0",
        ),
        (
            lambda: pseudo_genres(np.ones((3, 2)), n_genres=4, rng=np.random.default_rng(0)),
            "pseudo_genres: n_genres must be an integer in [1, n_items = 3], got 4",
        ),
        (
            lambda: genre_calibration_kl(np.array([[0]]), sp.csr_matrix((2, 4)), GENRES),
            "genre_calibration_kl: history.shape[0] must be 1 (one row per list), got 2",
        ),
        (
            lambda: list_genre_distribution(np.array([[7]]), genre_shares(GENRES)),
            "list_genre_distribution: items must be item ids < n_items = 4, got 7",
        ),
    ],
)
def test_invalid_inputs_raise_user_input_error(call: Any, expected: str) -> None:
    with pytest.raises(UserInputError) as info:
        call()
    assert str(info.value).startswith(expected)


def test_clustered_slope_interval_widens_when_users_differ() -> None:
    # 40 users, each with their own click propensity the predictions ignore: requests of a
    # user are correlated, so an interval treating 20,000 requests as independent is too
    # narrow; clustered by user it widens.
    rng = np.random.default_rng(3)
    user = rng.integers(0, 40, 20_000)
    shift = rng.normal(0, 0.8, 40)[user]
    p = rng.uniform(0.02, 0.2, user.size)
    x = np.log(p / (1 - p))
    y = (rng.random(user.size) < 1 / (1 + np.exp(-(x + shift)))).astype(np.int8)
    naive = calibration_slope(p, y)
    clustered = calibration_slope(p, y, groups=user)
    assert clustered.slope == naive.slope and clustered.clusters == 40
    assert naive.clusters is None
    width = clustered.slope_ci_high - clustered.slope_ci_low
    assert width > 1.2 * (naive.slope_ci_high - naive.slope_ci_low)


def test_clustered_slope_with_one_row_per_cluster_matches_the_model_interval() -> None:
    rng = np.random.default_rng(4)
    p = rng.uniform(0.05, 0.4, 50_000)
    y = (rng.random(p.size) < p).astype(np.int8)
    naive = calibration_slope(p, y)
    robust = calibration_slope(p, y, groups=np.arange(p.size))
    naive_width = naive.slope_ci_high - naive.slope_ci_low
    assert robust.slope_ci_high - robust.slope_ci_low == pytest.approx(naive_width, rel=0.05)
