"""The few distribution functions a run needs, without importing ``scipy.stats``.

``import scipy.stats`` costs 0.7-0.9 s of CPU (it builds every distribution's docstring),
which is most of a warm rerun's imports, while a run calls only a handful of its
functions.  Here they are on the special functions ``scipy.stats`` itself evaluates
(``scipy.special``, loaded anyway), with its handling of edges, so the values are the same
floats: ``tests/unit/replay/test_distributions.py`` compares each with ``scipy.stats`` on
grids (agreement to 1e-12, and exactly where the same special function is called).

* standard normal: ``norm_cdf``/``norm_sf``/``norm_ppf``/``norm_isf`` (``ndtr``, ``ndtri``);
* chi-squared survival ``chi2_sf`` (``chdtrc``) and Pearson's test ``chisquare``;
* binomial ``binom_cdf``/``binom_ppf`` and beta ``beta_ppf``/``beta_isf`` (the Boost
  functions behind ``scipy.stats.binom`` and ``scipy.stats.beta``);
* Kolmogorov's two-sided one-sample distribution ``kstwo_sf`` in its tails, where
  ``scipy.stats.kstwo`` uses closed forms (Simard and L'Ecuyer 2011); elsewhere it asks
  ``scipy.stats`` (imported then, and only then);
* ``rankdata`` with average ranks for ties.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.special as sc
import scipy.special._ufuncs as boost  # the Boost ufuncs scipy.stats.binom / beta call

__all__ = [
    "beta_isf",
    "beta_ppf",
    "binom_cdf",
    "binom_ppf",
    "chi2_sf",
    "chisquare",
    "kstwo_sf",
    "norm_cdf",
    "norm_isf",
    "norm_ppf",
    "norm_sf",
    "rankdata",
]

Floats = npt.NDArray[np.float64]


def _out(values: Floats) -> Any:
    """A 0-d result as a numpy scalar, like ``scipy.stats`` returns."""
    return values[()] if values.ndim == 0 else values


def norm_cdf(x: npt.ArrayLike) -> Any:
    """Φ(x), the standard normal CDF."""
    return _out(np.asarray(sc.ndtr(np.asarray(x, dtype=np.float64))))


def norm_sf(x: npt.ArrayLike) -> Any:
    """1 − Φ(x), computed as Φ(−x) (no cancellation in the upper tail)."""
    return _out(np.asarray(sc.ndtr(-np.asarray(x, dtype=np.float64))))


def norm_ppf(q: npt.ArrayLike) -> Any:
    """Φ⁻¹(q); −∞ at 0, +∞ at 1, NaN outside [0, 1]."""
    return _out(np.asarray(sc.ndtri(np.asarray(q, dtype=np.float64))))


def norm_isf(q: npt.ArrayLike) -> Any:
    """Φ⁻¹(1 − q), computed as −Φ⁻¹(q)."""
    return _out(np.asarray(-sc.ndtri(np.asarray(q, dtype=np.float64))))


def chi2_sf(x: npt.ArrayLike, df: npt.ArrayLike) -> Any:
    """P(χ²_df > x) for df > 0: 1 for x <= 0, NaN for df <= 0."""
    xs, dfs = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(df, np.float64))
    out = np.full(xs.shape, np.nan)
    valid = dfs > 0
    inside = valid & (xs > 0) & (xs < np.inf)
    out[valid & (xs <= 0)] = 1.0
    out[valid & (xs == np.inf)] = 0.0
    out[inside] = sc.chdtrc(dfs[inside], xs[inside])
    return _out(out)


def chisquare(observed: npt.ArrayLike, expected: npt.ArrayLike) -> tuple[float, float]:
    """Pearson's goodness-of-fit test of 1-D counts: ``(statistic, p-value)``.

    statistic = Σ (o − e)² / e over the k cells, p = P(χ²_{k−1} > statistic); the totals of
    ``observed`` and ``expected`` must agree (relative 1e-8, as ``scipy.stats.chisquare``
    demands).
    """
    o = np.asarray(observed, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if o.ndim != 1 or o.shape != e.shape:
        raise ValueError(f"observed {o.shape} and expected {e.shape} must be equal 1-D shapes")
    total_o, total_e = o.sum(), e.sum()
    if abs(total_o - total_e) > 1e-8 * max(abs(total_o), abs(total_e)):
        raise ValueError(f"observed sums to {total_o} but expected to {total_e}")
    statistic = float(((o - e) ** 2 / e).sum())
    return statistic, float(chi2_sf(statistic, o.size - 1))


def binom_cdf(k: float, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p): 0 below 0, 1 from n on."""
    if not (n >= 0 and float(n).is_integer() and 0.0 <= p <= 1.0) or math.isnan(k):
        return math.nan
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return min(max(float(boost._binom_cdf(math.floor(k), n, p)), 0.0), 1.0)


def binom_ppf(q: float, n: int, p: float) -> float:
    """The smallest k with P(X <= k) >= q: −1 at q = 0, n at q = 1, NaN outside [0, 1]."""
    if not (n >= 0 and float(n).is_integer() and 0.0 <= p <= 1.0) or not 0.0 <= q <= 1.0:
        return math.nan
    if q == 0.0:
        return -1.0
    if q == 1.0:
        return float(n)
    return float(boost._binom_ppf(q, n, p))


def _beta_inverse(q: npt.ArrayLike, a: npt.ArrayLike, b: npt.ArrayLike, *, upper: bool) -> Any:
    qs, as_, bs = np.broadcast_arrays(
        np.asarray(q, np.float64), np.asarray(a, np.float64), np.asarray(b, np.float64)
    )
    out = np.full(qs.shape, np.nan)
    valid = (as_ > 0) & (bs > 0)
    inside = valid & (qs > 0) & (qs < 1)
    # ppf: 0 at q = 0 and 1 at q = 1; isf the other way round.
    out[valid & (qs == 0)] = 1.0 if upper else 0.0
    out[valid & (qs == 1)] = 0.0 if upper else 1.0
    if upper:
        out[inside] = sc.betainccinv(as_[inside], bs[inside], qs[inside])
    else:
        out[inside] = boost._beta_ppf(qs[inside], as_[inside], bs[inside])
    return _out(out)


def beta_ppf(q: npt.ArrayLike, a: npt.ArrayLike, b: npt.ArrayLike) -> Any:
    """The q-quantile of Beta(a, b) (element-wise; NaN where a <= 0 or b <= 0)."""
    return _beta_inverse(q, a, b, upper=False)


def beta_isf(q: npt.ArrayLike, a: npt.ArrayLike, b: npt.ArrayLike) -> Any:
    """The (1 − q)-quantile of Beta(a, b), without forming 1 − q."""
    return _beta_inverse(q, a, b, upper=True)


def kstwo_sf(x: float, n: int) -> float:
    """P(D_n >= x) for Kolmogorov's two-sided one-sample statistic D_n.

    The branches of Simard and L'Ecuyer (2011) that are closed forms, as ``scipy.stats.
    kstwo`` takes them: 1 up to x = 1/(2n), 2 (1 − x)ⁿ from x = 1 − 1/n, 2 smirnov(n, x) for
    x >= 1/2 or (n > 140) n x² >= 2.2 (0 from n x² >= 370; n <= 140 from n x² > 4).  The
    rest (matrix and series methods) comes from ``scipy.stats.kstwo``.
    """
    if not (n > 0 and float(n).is_integer()) or math.isnan(x):
        return math.nan
    if x >= 1.0:
        return 0.0
    if x <= 0.0:
        return 1.0
    t = n * x
    if t <= 0.5:
        return 1.0
    if t <= 1.0:  # Ruben and Gambino's product: not needed by the lab, left to scipy
        return _scipy_kstwo_sf(x, n)
    if t >= n - 1:
        return min(max(2.0 * (1.0 - x) ** n, 0.0), 1.0)
    squared = t * x
    if x >= 0.5 or (n <= 140 and squared > 4.0) or (n > 140 and squared >= 2.2):
        if n > 140 and squared >= 370.0:
            return 0.0
        return min(max(2.0 * float(sc.smirnov(n, x)), 0.0), 1.0)
    return _scipy_kstwo_sf(x, n)


def _scipy_kstwo_sf(x: float, n: int) -> float:
    from scipy import stats  # the matrix and series methods: rarely needed, slow to import

    return float(stats.kstwo.sf(x, n))


def rankdata(values: npt.ArrayLike) -> Floats:
    """Ranks 1..n of a 1-D array, ties sharing their mean rank (all NaN if any is NaN)."""
    a = np.asarray(values).ravel()
    if a.size and a.dtype.kind in "fc" and np.isnan(a).any():
        return np.full(a.size, np.nan)
    order = np.argsort(a, kind="mergesort")
    ordered = a[order]
    new = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    group = np.cumsum(new)  # 1-based group of each sorted position
    ends = np.concatenate([np.flatnonzero(new)[1:], [a.size]])  # last rank of each group
    starts = np.flatnonzero(new) + 1  # first rank of each group
    mean_rank = (starts + ends) / 2.0
    ranks = np.empty(a.size, dtype=np.float64)
    ranks[order] = mean_rank[group - 1]
    return ranks
