"""Drift: PSI by hand, KS equal to scipy.stats.ks_2samp."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats

from replay.errors import UserInputError
from sim.metrics import ks_two_sample, population_stability_index
from sim.metrics.drift import psi_on_bins


def test_psi_by_hand_two_bins() -> None:
    # reference [1, 2, 3, 4]: median 2.5 -> bins (−∞, 2.5], (2.5, ∞), shares 0.5, 0.5
    # live [1, 1, 1, 4]: shares 0.75, 0.25
    # PSI = 0.25 ln(1.5) + (−0.25) ln(0.5) = 0.101366 + 0.173287 = 0.274653
    out = population_stability_index([1, 2, 3, 4], [1, 1, 1, 4], n_bins=2)
    assert out.psi == pytest.approx(0.274653, abs=1e-6)
    assert out.inner_edges.tolist() == [2.5]
    assert out.live_share.tolist() == [0.75, 0.25]


def test_psi_floors_empty_bins_at_epsilon() -> None:
    # live all in bin 0: shares (1, 0 -> 1e-4)
    # PSI = 0.5 ln(1/0.5) + (1e-4 − 0.5) ln(1e-4/0.5) = 0.346574 + 4.257745 = 4.604319
    out = population_stability_index([1, 2, 3, 4], [0, 1, 2, 2], n_bins=2)
    assert out.psi == pytest.approx(4.604319, abs=1e-6)


def test_psi_merges_tied_edges_of_discrete_counts() -> None:
    # Deciles of [0]*8 + [1, 2] (linear, position 9q): 0 for q <= 0.7, 0.2 at q = 0.8
    # (between 0 and 1), 1.1 at q = 0.9 -> edges {0, 0.2, 1.1}, four bins:
    # (−∞, 0] 0.8, (0, 0.2] 0 -> ε, (0.2, 1.1] 0.1, (1.1, ∞) 0.1.
    # A value on an edge goes to the bin below (0 is in the first bin).
    ref = [0] * 8 + [1, 2]
    out = population_stability_index(ref, ref)
    assert out.inner_edges.tolist() == pytest.approx([0.0, 0.2, 1.1])
    assert out.reference_share.tolist() == pytest.approx([0.8, 1e-4, 0.1, 0.1])
    assert out.psi == 0.0
    # live with one more zero and no 2: shares 0.9, ε, 0.1, ε
    # PSI = 0.1 ln(0.9/0.8) + (ε − 0.1) ln(ε/0.1) = 0.011778 + 0.690086 = 0.701864
    live = population_stability_index(ref, [0] * 9 + [1])
    assert live.psi == pytest.approx(0.1 * math.log(9 / 8) + (1e-4 - 0.1) * math.log(1e-3))


def test_psi_on_earlier_bins_equals_binning_again() -> None:
    rng = np.random.default_rng(4)
    reference = rng.poisson(30, 50_000).astype(float)  # discrete, with tied edges
    bins = population_stability_index(reference, rng.poisson(30, 900))
    for live in (rng.poisson(33, 400), rng.poisson(20, 5_000), np.full(60, 1e6)):
        again = population_stability_index(reference, live)
        ours = psi_on_bins(bins, live)
        assert ours.psi == again.psi
        assert np.array_equal(ours.live_share, again.live_share)


def test_psi_of_shifted_normal_is_moderate() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=50_000)
    assert population_stability_index(ref, rng.normal(size=50_000)).psi < 0.01
    assert 0.2 < population_stability_index(ref, rng.normal(0.5, 1, 50_000)).psi < 0.3


@pytest.mark.parametrize(
    ("m", "n", "shift", "method"),
    [
        (5, 7, 0.0, "auto"),
        (40, 40, 0.5, "exact"),
        (37, 113, 0.3, "exact"),
        (300, 200, 0.2, "auto"),
        (3, 900, 1.0, "exact"),
        (800, 1200, 0.1, "asymp"),
        (12_000, 11_000, 0.03, "auto"),
    ],
)
def test_ks_equals_scipy_ks_2samp(m: int, n: int, shift: float, method: str) -> None:
    # Library: scipy.stats.ks_2samp (two-sided), same method.
    rng = np.random.default_rng(m + n)
    a = rng.normal(size=m)
    b = rng.normal(shift, 1.0, size=n)
    ours = ks_two_sample(a, b, method=method)  # type: ignore[arg-type]
    ref = stats.ks_2samp(a, b, method=method)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert ours.pvalue == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)


def test_ks_with_ties_equals_scipy() -> None:
    rng = np.random.default_rng(5)
    a = rng.poisson(3, size=60)
    b = rng.poisson(4, size=45)
    ours = ks_two_sample(a, b)
    ref = stats.ks_2samp(a, b)
    assert ours.method == "exact"
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert ours.pvalue == pytest.approx(ref.pvalue, rel=1e-9)


def test_ks_by_hand() -> None:
    # a = [1, 2], b = [3, 4]: F_a reaches 1 before F_b leaves 0 -> D = 1.
    # Of the C(4, 2) = 6 equally likely interleavings only [a a b b] and [b b a a] reach
    # D = 1 -> p = 2/6.
    out = ks_two_sample([1, 2], [3, 4])
    assert out.statistic == 1.0
    assert out.pvalue == pytest.approx(1 / 3)
    same = ks_two_sample([1, 2, 3], [1, 2, 3])
    assert (same.statistic, same.pvalue) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            lambda: population_stability_index([1, 2], [1], n_bins=1),
            "population_stability_index: n_bins must be an integer >= 2, got 1",
        ),
        (
            lambda: population_stability_index([1, 2], [], n_bins=2),
            "population_stability_index: live.size must be >= 1, got 0",
        ),
        (
            lambda: population_stability_index([1, math.nan], [1]),
            "population_stability_index: reference must be finite everywhere, got nan",
        ),
        (
            lambda: ks_two_sample([1], [2], method="fast"),  # type: ignore[arg-type]
            "ks_two_sample: method must be",
        ),
    ],
)
def test_invalid_inputs_raise_user_input_error(call: Any, expected: str) -> None:
    with pytest.raises(UserInputError) as info:
        call()
    assert str(info.value).startswith(expected)
