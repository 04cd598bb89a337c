"""One-sided confidence bounds that guardrails judge with, and the error budget they share.

A guardrail asks "is the candidate's metric beyond its bound?" at every analysis.  Reading
the window's point estimate answers it wrongly about half the time when the truth sits at
the bound, and often enough when it sits near it, at every one of many analyses.  Each
guardrail is therefore judged on *evidence*: it fails only when a one-sided confidence
bound lies beyond the limit (``max``: the lower bound is above it; ``min``: the upper bound
is below it), and the levels of all those tests are set from one budget so that an
unchanged candidate is rolled back by guardrails with probability at most that budget.

Every :class:`Bounds` here has ``P(truth < lower) <= alpha`` and ``P(truth > upper) <= alpha``
(each side on its own), so one object serves both ``min`` and ``max`` checks.

Contents

- :func:`mean_bounds` — normal bounds on a mean or ratio from an :class:`ArmStats`
  (rates and list-quality means clustered by sticky unit, see ``sim.stats.clustered_ratio``).
- :func:`relative_change_bounds` — bounds on μ_t / μ_c − 1 by the delta method.
- :func:`quantile_bounds` — distribution-free order-statistic bounds on a quantile.
- :func:`ratio_bounds` — bounds on a ratio of two positive quantities from their own bounds.
- :func:`calibration_error_bounds` — bounds on the binned expected calibration error
  (simultaneous Clopper–Pearson intervals per bin).
- :func:`look_alpha` — the level of one guardrail bound at one analysis, from the budget.

References

- H. A. David, H. N. Nagaraja (2003), *Order Statistics*, 3rd ed., section 7.1
  (distribution-free confidence intervals for quantiles).
- C. J. Clopper, E. S. Pearson (1934), "The use of confidence or fiducial limits
  illustrated in the case of the binomial", Biometrika 26.
- A. Deng, U. Knoblich, J. Lu (2018), "Applying the delta method in metric analytics",
  KDD '18 (ratio metrics clustered by randomisation unit).
- C. E. Bonferroni (1936); the union bound over analyses is Boole's inequality.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from replay.distributions import beta_isf, beta_ppf, binom_cdf, binom_ppf, norm_isf
from replay.errors import must_be
from sim.stats import ArmStats

__all__ = [
    "Bounds",
    "calibration_error_bounds",
    "look_alpha",
    "mean_bounds",
    "quantile_bounds",
    "ratio_bounds",
    "relative_change_bounds",
]

_SOURCE = "bounds"


@dataclass(frozen=True, slots=True)
class Bounds:
    """A point ``estimate`` with one-sided bounds, each wrong with probability <= ``alpha``.

    ``lower`` is −∞ and ``upper`` +∞ when the data cannot bound the truth on that side (too
    few observations): a guardrail then has no evidence of a breach.
    """

    estimate: float
    lower: float
    upper: float
    alpha: float


def _check_alpha(alpha: float) -> None:
    if not (isinstance(alpha, int | float) and 0.0 < alpha < 1.0):
        raise must_be(_SOURCE, "alpha", "in (0, 1)", alpha)


def _unbounded(estimate: float, alpha: float) -> Bounds:
    return Bounds(estimate, -math.inf, math.inf, alpha)


def mean_bounds(stats: ArmStats, alpha: float) -> Bounds:
    """x̄ ∓ z_{1−α} · sqrt(s² / n), the one-sided normal bounds on a mean.

    ``stats`` may be a clustered ratio (``clustered_ratio``: n = units, var / n = Var(R)),
    which is how rates and list-quality means are bounded when users, not requests, are
    randomised.  Unbounded with fewer than two units (no variance estimate).  A zero
    standard error (every unit alike) bounds the mean at the estimate itself.
    """
    _check_alpha(alpha)
    if stats.n < 2:
        return _unbounded(stats.mean if stats.n else math.nan, alpha)
    half = float(norm_isf(alpha)) * math.sqrt(stats.sem_sq)
    return Bounds(stats.mean, stats.mean - half, stats.mean + half, alpha)


def relative_change_bounds(control: ArmStats, treatment: ArmStats, alpha: float) -> Bounds:
    """Bounds on the relative change L = μ_t / μ_c − 1 (a fraction), delta method.

        L̂ = x̄_t / x̄_c − 1,   Var(L̂) ≈ s²_t / (n_t x̄_c²) + x̄_t² s²_c / (n_c x̄_c⁴)

    and L̂ ∓ z_{1−α} · sqrt(Var).  Unbounded when an arm has fewer than two units or the
    control mean is 0 (a relative change is then undefined; estimate NaN).
    """
    _check_alpha(alpha)
    if control.mean == 0.0 or control.n < 2 or treatment.n < 2:
        estimate = treatment.mean / control.mean - 1.0 if control.mean != 0.0 else math.nan
        return _unbounded(estimate, alpha)
    mc = control.mean
    change = treatment.mean / mc - 1.0
    se = math.sqrt(treatment.sem_sq / (mc * mc) + treatment.mean**2 * control.sem_sq / mc**4)
    half = float(norm_isf(alpha)) * se
    return Bounds(change, change - half, change + half, alpha)


def quantile_bounds(values: npt.ArrayLike, q: float, alpha: float) -> Bounds:
    """Distribution-free bounds on the q-quantile ξ_q from order statistics.

    With the sorted sample x_(1) <= ... <= x_(n) of independent draws and B ~ Bin(n, q):

        lower = x_(l), l − 1 the largest k with P(B <= k) <= α   →  P(x_(l) > ξ_q) <= α
        upper = x_(u), u − 1 the smallest k with P(B <= k) >= 1 − α  →  P(x_(u) < ξ_q) <= α

    (the count of draws at or below ξ_q is binomial whatever the distribution; David and
    Nagaraja 2003, 7.1).  −∞ / +∞ when n is too small for that side (e.g. a lower bound on
    p99 needs the tail to hold enough draws).  ``estimate`` is the inverted-CDF quantile,
    as the window statistics report it.
    """
    _check_alpha(alpha)
    if not 0.0 < q < 1.0:
        raise must_be(_SOURCE, "q", "in (0, 1)", q)
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = int(x.size)
    if n == 0:
        return _unbounded(math.nan, alpha)
    estimate = float(np.percentile(x, 100.0 * q, method="inverted_cdf"))
    # ppf gives the smallest k with cdf(k) >= p; step back where cdf(k) overshoots α.
    k_low = int(binom_ppf(alpha, n, q))
    if binom_cdf(k_low, n, q) > alpha:
        k_low -= 1
    k_up = int(binom_ppf(1.0 - alpha, n, q))
    lower = float(x[k_low]) if k_low >= 0 else -math.inf
    upper = float(x[k_up]) if k_up < n else math.inf
    return Bounds(estimate, lower, upper, alpha)


def ratio_bounds(numerator: Bounds, denominator: Bounds) -> Bounds:
    """Bounds on a/b − 1 for positive a, b from bounds on each (each side errs <= α_a + α_b).

        lower = a_lower / b_upper − 1,   upper = a_upper / b_lower − 1

    A side is unbounded when its denominator bound is not a positive finite number.
    """
    a, b = numerator, denominator
    estimate = a.estimate / b.estimate - 1.0 if b.estimate > 0 else math.nan
    # a >= 0, so a / b >= 0 and the change is at least −1 even when b has no upper bound.
    lower = max(a.lower, 0.0) / b.upper - 1.0 if b.upper > 0 else -math.inf
    upper = a.upper / b.lower - 1.0 if math.isfinite(b.lower) and b.lower > 0 else math.inf
    return Bounds(estimate, lower, upper, a.alpha + b.alpha)


def calibration_error_bounds(
    predicted: npt.ArrayLike, clicked: npt.ArrayLike, alpha: float, *, n_bins: int = 15
) -> Bounds:
    """Bounds on the binned expected calibration error of a window's predictions.

    Bins as ``sim.metrics.calibration.expected_calibration_error``: (b/M, (b+1)/M], the first
    also holding 0.  The truth bounded is the calibration error of these predictions,

        ECE* = Σ_b w_b · |m_b − π_b|,   w_b = n_b / n,  m_b mean prediction in bin b,

    with π_b the true click rate of the bin's requests (clicks are independent given who
    was shown what).  Each of the B non-empty bins gets a two-sided Clopper–Pearson
    interval [lo_b, hi_b] for π_b at level 1 − α / B, so all of them hold at once with
    probability >= 1 − α (Bonferroni), and then

        lower = Σ_b w_b · dist(m_b, [lo_b, hi_b])
        upper = Σ_b w_b · max(|m_b − lo_b|, |m_b − hi_b|)

    The plug-in ECE (``estimate``) is biased upwards in small windows (every bin's sampling
    noise adds to it); the lower bound is what a ``max`` guardrail compares.
    """
    _check_alpha(alpha)
    p = np.asarray(predicted, dtype=np.float64).ravel()
    y = np.asarray(clicked, dtype=np.float64).ravel()
    if p.shape != y.shape:
        raise must_be(_SOURCE, "clicked", f"one outcome per prediction ({p.size})", y.size)
    n = int(p.size)
    if n == 0:
        return _unbounded(math.nan, alpha)
    inner = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    bin_id = np.searchsorted(inner, p, side="left")
    count = np.bincount(bin_id, minlength=n_bins)
    present = count > 0
    n_b = count[present].astype(np.float64)
    mean_pred = np.bincount(bin_id, weights=p, minlength=n_bins)[present] / n_b
    clicks = np.bincount(bin_id, weights=y, minlength=n_bins)[present]
    tail = alpha / (2.0 * int(present.sum()))
    lo = np.where(clicks > 0, beta_ppf(tail, clicks, n_b - clicks + 1.0), 0.0)
    hi = np.where(clicks < n_b, beta_isf(tail, clicks + 1.0, n_b - clicks), 1.0)
    weight = n_b / n
    gap = np.maximum(np.maximum(lo - mean_pred, mean_pred - hi), 0.0)
    widest = np.maximum(np.abs(mean_pred - lo), np.abs(mean_pred - hi))
    estimate = float(np.abs(mean_pred - clicks / n_b) @ weight)
    return Bounds(estimate, float(gap @ weight), float(widest @ weight), alpha)


def look_alpha(budget: float, *, looks: int, failure_limit: int, bounds: int) -> float:
    """Level of one guardrail bound at one analysis, so that all of them share ``budget``.

    A candidate is rolled back when ``failure_limit`` = f analyses fail, out of at most
    ``looks`` = L planned.  If each analysis fails with probability at most a when the
    candidate is within every bound, and analyses of disjoint windows are independent,
    Boole's inequality over the C(L, f) sets of f analyses gives

        P(rollback) <= C(L, f) · a^f,   so   a = (budget / C(L, f))^(1/f)

    keeps it under ``budget``; an analysis fails when any of the K = ``bounds`` one-sided
    bounds is breached, so each gets a / K (Bonferroni).  L < f is read as L = f.
    """
    _check_alpha(budget)
    if looks < 1 or failure_limit < 1 or bounds < 1:
        raise must_be(
            _SOURCE, "looks, failure_limit, bounds", "each >= 1", (looks, failure_limit, bounds)
        )
    combinations = math.comb(max(looks, failure_limit), failure_limit)
    per_look = math.exp((math.log(budget) - math.log(combinations)) / failure_limit)
    return per_look / bounds
