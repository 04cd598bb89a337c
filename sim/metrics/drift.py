"""Drift between the training window and live traffic: PSI and the two-sample KS test.

Typical inputs: item popularity (requests per item) or user activity (requests per user),
one sample from the window a model version was trained on and one from the live run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from replay.distributions import kstwo_sf
from replay.errors import must_be
from sim.metrics._checks import FloatArray, as_1d_float

__all__ = [
    "KSResult",
    "PSIResult",
    "ks_two_sample",
    "population_stability_index",
    "psi_on_bins",
]

# Above this sample size "auto" switches from the exact p-value to the asymptotic one; the
# same threshold as scipy.stats.ks_2samp, so both agree on which one a sample gets.
_EXACT_MAX_N = 10_000


@dataclass(frozen=True, slots=True)
class PSIResult:
    """PSI with the bins it was computed on.

    ``inner_edges`` [n_bins − 1] are the distinct reference quantiles; bin b is
    (edge[b − 1], edge[b]] with the outer bins open to −∞ and +∞.  ``reference_share`` and
    ``live_share`` [n_bins] are the shares after flooring at ε.
    """

    psi: float
    inner_edges: FloatArray
    reference_share: FloatArray
    live_share: FloatArray


@dataclass(frozen=True, slots=True)
class KSResult:
    """Two-sided two-sample KS: statistic D, p-value, and which p-value method was used."""

    statistic: float
    pvalue: float
    method: Literal["exact", "asymp"]


def population_stability_index(
    reference: npt.ArrayLike,
    live: npt.ArrayLike,
    *,
    n_bins: int = 10,
    epsilon: float = 1e-4,
) -> PSIResult:
    """PSI = Σ_b (l_b − r_b) · ln(l_b / r_b) over quantile bins of the reference sample.

    Bins: the inner edges are the reference's 1/n_bins, 2/n_bins, ... quantiles
    (``numpy.quantile``, linear interpolation).  Bins are right-closed, (e_{b−1}, e_b], and
    the first and last bins are open to −∞ and +∞, so live values outside the reference
    range still land in a bin.  Repeated edges (discrete data such as counts, where many
    reference values tie) are merged, so such data can get fewer than ``n_bins`` bins; a
    value equal to an edge goes to the bin below it.

    r_b and l_b are the shares of each sample in bin b, floored at ε = ``epsilon`` so an empty
    bin adds a large but finite term.  Every term is ≥ 0, so PSI ≥ 0, with 0 for samples with
    the same bin shares.  Common reading: < 0.1 stable, 0.1–0.25 moderate, > 0.25 large.

    Shapes: ``reference`` [n_ref], ``live`` [n_live], finite numbers.
    Reference: Siddiqi (2006), "Credit Risk Scorecards", Wiley, ch. 8; Yurdakul (2018),
    "Statistical Properties of Population Stability Index", PhD thesis, W. Michigan Univ.
    """
    source = "population_stability_index"
    if not (isinstance(n_bins, int) and n_bins >= 2):
        raise must_be(source, "n_bins", "an integer >= 2", n_bins)
    if not (0.0 < epsilon < 1.0 / n_bins):
        raise must_be(source, "epsilon", f"in (0, 1/n_bins = {1.0 / n_bins})", epsilon)
    ref = as_1d_float(source, "reference", reference)
    cur = as_1d_float(source, "live", live)
    quantiles = np.arange(1, n_bins) / n_bins
    edges = np.unique(np.quantile(ref, quantiles))
    k = edges.shape[0] + 1
    r = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=k) / ref.shape[0]
    c = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=k) / cur.shape[0]
    r = np.maximum(r, epsilon)
    c = np.maximum(c, epsilon)
    psi = float(((c - r) * np.log(c / r)).sum())
    return PSIResult(psi, edges, r, c)


def psi_on_bins(bins: PSIResult, live: npt.ArrayLike, *, epsilon: float = 1e-4) -> PSIResult:
    """PSI of another live sample on the bins and reference shares of an earlier result.

    Equal to ``population_stability_index(reference, live)`` for the reference ``bins`` was
    computed from, without binning the reference again (windows of one run share it).
    """
    cur = as_1d_float("psi_on_bins", "live", live)
    k = bins.inner_edges.shape[0] + 1
    c = np.bincount(np.searchsorted(bins.inner_edges, cur, side="left"), minlength=k)
    c = np.maximum(c / cur.shape[0], epsilon)
    r = bins.reference_share
    return PSIResult(float(((c - r) * np.log(c / r)).sum()), bins.inner_edges, r, c)


def _exact_pvalue(m: int, n: int, d_scaled: int) -> float:
    """P(D ≥ d) under H0 by walking the (m, n) lattice of merged orders.

    Under H0 every interleaving of the two samples is equally likely; it is a path from
    (0, 0) to (m, n) stepping +1 in i (a value from the first sample) or in j.  The path
    crosses the statistic's threshold where |i·n − j·m| ≥ d·m·n (= ``d_scaled``, an integer
    so the comparison is exact).  The mass of paths that reach such a state is absorbed and
    summed; summing positive terms keeps small p-values accurate.  Hodges (1957), "The
    significance probability of the Smirnov two-sample test", Arkiv för Matematik 3.
    """
    if d_scaled <= 0:
        return 1.0
    total = m + n
    prob = np.zeros(m + 1)  # prob[i]: mass at (i, s − i) on the current anti-diagonal s
    prob[0] = 1.0
    ia = np.arange(m + 1, dtype=np.float64)
    outside = 0.0
    for s in range(1, total + 1):  # loop over anti-diagonals (m + n), vectorized along each
        remaining = total - (s - 1)
        j_prev = (s - 1) - ia
        step_i = prob * (m - ia) / remaining
        step_j = prob * np.clip(n - j_prev, 0.0, None) / remaining
        prob = step_j
        prob[1:] += step_i[:-1]
        # Inside the band: s·m − d < i·(m + n) < s·m + d.
        lo = (s * m - d_scaled) // total + 1
        hi = -((-(s * m + d_scaled)) // total) - 1
        lo, hi = max(lo, 0), min(hi, m)
        if lo > 0:
            outside += float(prob[:lo].sum())
            prob[:lo] = 0.0
        if hi < m:
            outside += float(prob[hi + 1 :].sum())
            prob[hi + 1 :] = 0.0
    return min(outside, 1.0)


def ks_two_sample(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    method: Literal["auto", "exact", "asymp"] = "auto",
) -> KSResult:
    """Two-sided two-sample Kolmogorov–Smirnov test.

    D = sup_x |F_a(x) − F_b(x)| over the empirical CDFs (ties handled by evaluating both
    CDFs at every observed value).  p-value:

    - ``"exact"``: P(D_{m,n} ≥ D) under H0 by the lattice-path recursion of Hodges (1957);
      exact for continuous data, conservative with ties.
    - ``"asymp"``: Kolmogorov's one-sample distribution at the effective size
      round(m·n / (m + n)) (``scipy.stats.kstwo``), Smirnov's large-sample result.
    - ``"auto"``: exact when max(m, n) ≤ 10 000, else asymptotic.

    Shapes: ``a`` [m], ``b`` [n], finite numbers.  Statistic and p-value equal
    ``scipy.stats.ks_2samp(a, b, method=...)`` (two-sided).
    Reference: Hodges (1957); Smirnov (1948), Ann. Math. Stat. 19(2).
    """
    source = "ks_two_sample"
    if method not in ("auto", "exact", "asymp"):
        raise must_be(source, "method", "'auto', 'exact' or 'asymp'", method)
    xa = np.sort(as_1d_float(source, "a", a))
    xb = np.sort(as_1d_float(source, "b", b))
    m, n = xa.shape[0], xb.shape[0]
    both = np.concatenate([xa, xb])
    # Integer CDF numerators scaled to the common denominator m·n keep D exact.
    fa = np.searchsorted(xa, both, side="right").astype(np.int64) * n
    fb = np.searchsorted(xb, both, side="right").astype(np.int64) * m
    d_scaled = int(np.abs(fa - fb).max())
    statistic = d_scaled / (m * n)
    auto: Literal["exact", "asymp"] = "exact" if max(m, n) <= _EXACT_MAX_N else "asymp"
    use = auto if method == "auto" else method
    if use == "exact":
        small, large = (m, n) if m <= n else (n, m)
        pvalue = _exact_pvalue(small, large, d_scaled)
    else:
        en = m * n / (m + n)
        pvalue = kstwo_sf(statistic, round(en))
    return KSResult(statistic, float(np.clip(pvalue, 0.0, 1.0)), use)
