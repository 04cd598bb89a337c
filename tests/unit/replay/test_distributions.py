"""replay.distributions agrees with scipy.stats on grids (it replaces it on the run path)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from replay import distributions as d

PROBABILITIES = np.r_[0.0, 1e-300, 1e-12, 1e-6, np.linspace(0.001, 0.999, 57), 1 - 1e-9, 1.0]
POINTS = np.r_[-np.inf, -40.0, np.linspace(-9, 9, 73), 40.0, np.inf, np.nan]


def _same(ours: object, theirs: object, rtol: float = 1e-12) -> None:
    a, b = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=rtol, atol=0.0, equal_nan=True)


def test_normal_functions_are_scipys() -> None:
    for ours, theirs, grid in (
        (d.norm_cdf, stats.norm.cdf, POINTS),
        (d.norm_sf, stats.norm.sf, POINTS),
        (d.norm_ppf, stats.norm.ppf, np.r_[PROBABILITIES, -0.5, 1.5]),
        (d.norm_isf, stats.norm.isf, np.r_[PROBABILITIES, -0.5, 1.5]),
    ):
        _same(ours(grid), theirs(grid), rtol=0.0)  # the same special function: exact
        for value in grid[::7]:
            assert np.isscalar(ours(value)) or np.ndim(ours(value)) == 0
            _same(ours(float(value)), theirs(float(value)), rtol=0.0)


def test_chi2_survival_and_pearsons_test_are_scipys() -> None:
    xs = np.r_[-1.0, 0.0, 1e-8, np.geomspace(1e-3, 500.0, 40), np.inf, np.nan]
    for df in (0.5, 1, 2, 3, 7, 30, 200, 0, -1):
        _same(d.chi2_sf(xs, df), stats.chi2.sf(xs, df), rtol=0.0)
    rng = np.random.default_rng(2)
    for k in (2, 3, 5, 12):
        for _ in range(20):
            expected = rng.dirichlet(np.ones(k)) * rng.integers(10, 100_000)
            observed = rng.multinomial(int(expected.sum().round()), expected / expected.sum())
            expected *= observed.sum() / expected.sum()
            ours = d.chisquare(observed, expected)
            theirs = stats.chisquare(observed, expected)
            _same(ours, (theirs.statistic, theirs.pvalue))
    with pytest.raises(ValueError):
        d.chisquare([1, 2], [1, 3])


def test_binomial_functions_are_scipys() -> None:
    for n, p in itertools.product((0, 1, 2, 7, 50, 999, 20_000), (0.0, 1e-3, 0.2, 0.5, 0.99, 1.0)):
        for k in (-3, -0.5, 0, 0.5, 1, 2.7, n // 3, n // 2, n - 1, n, n + 2, math.nan):
            _same(d.binom_cdf(k, n, p), stats.binom.cdf(k, n, p), rtol=0.0)
        for q in PROBABILITIES:
            _same(d.binom_ppf(q, n, p), stats.binom.ppf(q, n, p), rtol=0.0)
    assert math.isnan(d.binom_cdf(1, 3, 1.5)) and math.isnan(d.binom_ppf(0.5, 2.5, 0.1))


@pytest.mark.filterwarnings("ignore:Error in function boost")  # both sides give up alike
def test_beta_quantiles_are_scipys() -> None:
    a = np.array([0.0, 0.5, 1.0, 3.0, 40.0, 2_000.0])
    b = np.array([1.0, 2.0, 0.7, 25.0, 3_000.0, 1e5])
    for q in PROBABILITIES:
        for aa, bb in itertools.product(a, b):
            _same(d.beta_ppf(q, aa, bb), stats.beta.ppf(q, aa, bb), rtol=0.0)
            _same(d.beta_isf(q, aa, bb), stats.beta.isf(q, aa, bb), rtol=0.0)
    grid_a, grid_b = np.meshgrid(a, b)
    _same(d.beta_ppf(1e-4, grid_a, grid_b), stats.beta.ppf(1e-4, grid_a, grid_b), rtol=0.0)
    _same(d.beta_isf(1e-4, grid_a, grid_b), stats.beta.isf(1e-4, grid_a, grid_b), rtol=0.0)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 140, 141, 1_000, 20_000, 120_000])
def test_kolmogorov_survival_is_scipys(n: int) -> None:
    """Every branch: closed forms in the tails, scipy's own methods in between."""
    xs = np.r_[-0.1, 0.0, 0.25 / n, 0.5 / n, 0.75 / n, 1.0 / n, np.geomspace(1.5 / n, 0.999, 30)]
    xs = np.r_[xs, np.sqrt(np.r_[2.2, 4.0, 4.01, 370.0, 371.0] / n), 1 - 1 / n, 1.0, 2.0]
    for x in xs:
        _same(d.kstwo_sf(float(x), n), stats.kstwo.sf(float(x), n))


def test_rankdata_is_scipys() -> None:
    rng = np.random.default_rng(5)
    for values in (
        rng.normal(size=50),
        rng.integers(0, 6, 200),
        rng.integers(0, 3, 7).astype(np.float32),
        np.array([]),
        np.array([2.0, np.nan, 1.0]),
        np.array([5, 5, 5]),
    ):
        _same(d.rankdata(values), stats.rankdata(values), rtol=0.0)
