"""Unit tests for sim/bounds.py: definitions checked by brute force, coverage over many draws,
hand-computed values and edges.

Coverage checks draw from known laws and count how often a bound lands on the wrong side of
the truth: it must be at most alpha plus three Monte Carlo standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from replay.errors import UserInputError
from sim.bounds import (
    Bounds,
    calibration_error_bounds,
    look_alpha,
    mean_bounds,
    quantile_bounds,
    ratio_bounds,
    relative_change_bounds,
)
from sim.metrics.calibration import expected_calibration_error
from sim.stats import ArmStats, relative_lift_interval


def _ceiling(alpha: float, draws: int) -> float:
    return alpha + 3.0 * math.sqrt(alpha * (1.0 - alpha) / draws)


# --------------------------------------------------------------------------- quantiles


def _order_statistics_by_definition(n: int, q: float, alpha: float) -> tuple[int, int]:
    """0-based (lower, upper) indices straight from the binomial CDF over every k."""
    cdf = sps.binom.cdf(np.arange(n + 1), n, q)
    below = np.flatnonzero(cdf <= alpha)
    lower = int(below[-1]) if below.size else -1
    upper = int(np.flatnonzero(cdf >= 1.0 - alpha)[0])
    return lower, upper


@pytest.mark.parametrize(
    ("n", "q", "alpha"),
    [(100, 0.5, 0.05), (1000, 0.99, 0.01), (600, 0.95, 0.002), (50, 0.99, 0.05), (7, 0.5, 0.1)],
)
def test_quantile_bounds_are_the_order_statistics_the_binomial_names(
    n: int, q: float, alpha: float
) -> None:
    values = np.arange(n, dtype=np.float64)[::-1]  # sorted inside: x_(k+1) == k
    got = quantile_bounds(values, q, alpha)
    lower, upper = _order_statistics_by_definition(n, q, alpha)
    assert got.lower == (lower if lower >= 0 else -math.inf)
    assert got.upper == (upper if upper < n else math.inf)
    assert got.estimate == np.percentile(values, 100 * q, method="inverted_cdf")


def test_a_high_quantile_of_a_small_sample_has_no_upper_bound() -> None:
    # 50 draws cannot show that p99 is below anything: the 50th is not enough.
    got = quantile_bounds(np.arange(50.0), 0.99, 0.05)
    assert got.upper == math.inf
    assert got.lower == 47.0  # P(Bin(50, .99) <= 47) = 0.0138 <= 0.05 < P(<= 48) = 0.0894
    empty = quantile_bounds([], 0.99, 0.05)
    assert math.isnan(empty.estimate) and (empty.lower, empty.upper) == (-math.inf, math.inf)


def test_quantile_bounds_cover_the_true_quantile() -> None:
    # Which order statistics bound the quantile depends only on (n, q, alpha): read them off
    # once (the values 0..n-1 are their own ranks) and apply them to many sorted samples.
    rng = np.random.default_rng(1)
    draws, n, q, alpha = 20_000, 400, 0.99, 0.05
    ranks = quantile_bounds(np.arange(n, dtype=np.float64), q, alpha)
    samples = np.sort(rng.lognormal(0.0, 1.0, (draws, n)), axis=1)
    truth = float(sps.lognorm(s=1.0).ppf(q))
    low_wrong = float((samples[:, int(ranks.lower)] > truth).mean())
    high_wrong = float((samples[:, int(ranks.upper)] < truth).mean())
    assert low_wrong <= _ceiling(alpha, draws)
    assert high_wrong <= _ceiling(alpha, draws)
    # Not vacuous: each side is wrong some of the time, at a rate not far below alpha.
    assert low_wrong > alpha / 3 and high_wrong > alpha / 3


# --------------------------------------------------------------------------- means and rates


def test_mean_bounds_are_one_sided_normal_bounds() -> None:
    got = mean_bounds(ArmStats(100, 0.5, 0.25), 0.025)
    half = 1.959963984540054 * 0.05
    assert got.lower == pytest.approx(0.5 - half)
    assert got.upper == pytest.approx(0.5 + half)
    assert got.estimate == 0.5 and got.alpha == 0.025


def test_mean_bounds_without_a_variance_say_nothing_and_a_constant_bounds_itself() -> None:
    alone = mean_bounds(ArmStats(1, 1.0, 0.0), 0.05)
    assert (alone.lower, alone.upper) == (-math.inf, math.inf)
    # Every one of 30 units failed every request: the rate is 1 with no doubt.
    all_failed = mean_bounds(ArmStats(30, 1.0, 0.0), 0.05)
    assert (all_failed.lower, all_failed.upper) == (1.0, 1.0)


def test_relative_change_bounds_match_the_delta_method_interval() -> None:
    control, treatment = ArmStats(400, 2.0, 4.0), ArmStats(300, 1.8, 5.0)
    one_sided = relative_change_bounds(control, treatment, 0.025)
    two_sided = relative_lift_interval(control, treatment, 0.95)
    assert one_sided.estimate == pytest.approx(-0.1)
    assert one_sided.lower == pytest.approx(two_sided.low)
    assert one_sided.upper == pytest.approx(two_sided.high)


def test_relative_change_is_unbounded_when_undefined() -> None:
    zero = relative_change_bounds(ArmStats(100, 0.0, 0.0), ArmStats(100, 0.1, 0.09), 0.05)
    assert math.isnan(zero.estimate) and zero.lower == -math.inf and zero.upper == math.inf
    few = relative_change_bounds(ArmStats(1, 1.0, 0.0), ArmStats(100, 0.1, 0.09), 0.05)
    assert few.lower == -math.inf and few.upper == math.inf


def test_ratio_bounds_divide_opposite_sides() -> None:
    slow = Bounds(200.0, 150.0, 260.0, 0.01)
    fast = Bounds(100.0, 90.0, 120.0, 0.01)
    got = ratio_bounds(slow, fast)
    assert got.estimate == pytest.approx(1.0)
    assert got.lower == pytest.approx(150.0 / 120.0 - 1.0)
    assert got.upper == pytest.approx(260.0 / 90.0 - 1.0)
    assert got.alpha == pytest.approx(0.02)
    unknown = ratio_bounds(slow, Bounds(100.0, -math.inf, math.inf, 0.01))
    assert (unknown.lower, unknown.upper) == (-1.0, math.inf)


# --------------------------------------------------------------------------- calibration


def test_calibration_estimate_is_the_binned_ece() -> None:
    rng = np.random.default_rng(2)
    p = rng.uniform(0.0, 1.0, 5000)
    y = (rng.uniform(size=p.size) < np.clip(p * 1.2, 0, 1)).astype(np.int8)
    got = calibration_error_bounds(p, y, 0.05)
    assert got.estimate == pytest.approx(expected_calibration_error(p, y))
    assert 0.0 <= got.lower <= got.estimate <= got.upper


@pytest.mark.parametrize("shift", [0.0, 0.05])
def test_calibration_bounds_cover_the_true_binned_error(shift: float) -> None:
    # True click rates p + shift: the binned error of these predictions is exactly `shift`
    # (every bin's true rate is its mean prediction plus shift).
    rng = np.random.default_rng(3)
    draws, n, alpha = 800, 600, 0.05
    low_wrong = high_wrong = 0
    for _ in range(draws):
        p = rng.uniform(0.05, 0.45, n)
        y = rng.uniform(size=n) < p + shift
        got = calibration_error_bounds(p, y, alpha)
        low_wrong += got.lower > shift + 1e-12
        high_wrong += got.upper < shift - 1e-12
    assert low_wrong / draws <= _ceiling(alpha, draws)
    assert high_wrong / draws <= _ceiling(alpha, draws)


def test_a_large_miscalibration_is_bounded_away_from_zero() -> None:
    rng = np.random.default_rng(4)
    p = rng.uniform(0.05, 0.45, 5000)
    y = rng.uniform(size=p.size) < p + 0.15
    assert calibration_error_bounds(p, y, 0.001).lower > 0.05
    # ... while the plug-in ECE of a calibrated small window is well above zero: its noise.
    small = rng.uniform(0.05, 0.45, 300)
    calibrated = calibration_error_bounds(small, rng.uniform(size=300) < small, 0.001)
    assert calibrated.estimate > 0.02 and calibrated.lower == 0.0


# --------------------------------------------------------------------------- the budget


def test_look_alpha_hand_computed() -> None:
    # 24 analyses, rollback at the 2nd failure, 7 bounds: sqrt(0.05 / C(24, 2)) / 7.
    assert look_alpha(0.05, looks=24, failure_limit=2, bounds=7) == pytest.approx(
        math.sqrt(0.05 / 276) / 7
    )
    assert look_alpha(0.05, looks=12, failure_limit=1, bounds=2) == pytest.approx(0.05 / 24)
    # Fewer planned analyses than the failure limit: read as L = f, one way to fail.
    assert look_alpha(0.04, looks=1, failure_limit=2, bounds=1) == pytest.approx(0.2)


@pytest.mark.parametrize(("looks", "failure_limit"), [(24, 2), (12, 1), (40, 3), (5, 2)])
def test_look_alpha_keeps_independent_analyses_within_the_budget(
    looks: int, failure_limit: int
) -> None:
    # Each analysis fails with probability K * a (any of K bounds); a rollback needs f of L.
    bounds, budget = 5, 0.05
    per_analysis = bounds * look_alpha(
        budget, looks=looks, failure_limit=failure_limit, bounds=bounds
    )
    rollback = float(sps.binom.sf(failure_limit - 1, looks, per_analysis))
    assert rollback <= budget
    assert rollback > budget / 10  # and it does not throw most of the budget away


def test_invalid_levels_are_user_errors() -> None:
    with pytest.raises(UserInputError):
        mean_bounds(ArmStats(10, 0.1, 0.01), 0.0)
    with pytest.raises(UserInputError):
        quantile_bounds([1.0], 1.0, 0.05)
    with pytest.raises(UserInputError):
        look_alpha(0.05, looks=0, failure_limit=1, bounds=1)
