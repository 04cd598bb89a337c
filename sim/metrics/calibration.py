"""Calibration: of click probabilities (ECE, reliability diagram) and of genres (Steck 2018).

Two different questions share the word:

- Are the predicted click probabilities right?  ECE over equal-width or equal-mass bins,
  the reliability diagram and the calibration slope and intercept (logistic
  recalibration), from the request log's ``p_click`` and ``clicks`` columns.
- Does a list reflect the user's tastes in their proportions?  Steck's KL(p ‖ q̃) between
  the genre distribution of the user's history (p) and that of the list (q).  Catalogues
  without genre metadata get pseudo-genres from k-means clusters of the item factors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.special import expit, logit

from replay.calibration import fit_platt
from replay.errors import InternalError, must_be
from sim.metrics._checks import (
    FloatArray,
    as_binary,
    as_lists,
    as_matrix,
    as_probability,
    safe_ratio,
    same_length,
    z_value,
)

__all__ = [
    "BinStrategy",
    "CalibrationSlope",
    "ReliabilityDiagram",
    "calibration_slope",
    "expected_calibration_error",
    "genre_calibration_kl",
    "genre_shares",
    "list_genre_distribution",
    "pseudo_genres",
    "reliability_diagram",
    "steck_kl",
    "user_genre_distribution",
]

# Lists per block when gathering [block, K, n_genres] genre shares: bounds the temporary.
_LIST_BLOCK = 1 << 16


#: ``uniform``: M equal-width bins of [0, 1]; ``quantile``: M bins of (about) equal count, with
#: edges at the predictions' quantiles (sklearn's ``calibration_curve`` strategies).
BinStrategy = Literal["uniform", "quantile"]

# Predictions are clipped this far from 0 and 1 before the logit of the calibration slope.
_LOGIT_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class ReliabilityDiagram:
    """Per-bin data of a reliability diagram; every array has shape [n_bins].

    Bin b covers (lower[b], upper[b]], the first bin also holds its lower edge.
    ``mean_predicted`` and ``observed_rate`` are NaN in empty bins (``count == 0``).  With
    ``quantile`` bins, tied predictions stay in one bin, so bins between equal edges are
    empty.
    """

    lower: FloatArray
    upper: FloatArray
    mean_predicted: FloatArray
    observed_rate: FloatArray
    count: npt.NDArray[np.int64]


def _bin_sums(
    source: str,
    p_pred: npt.ArrayLike,
    outcome: npt.ArrayLike,
    n_bins: int,
    strategy: BinStrategy,
) -> tuple[FloatArray, FloatArray, FloatArray, npt.NDArray[np.int64], int]:
    if not (isinstance(n_bins, int) and n_bins >= 1):
        raise must_be(source, "n_bins", "an integer >= 1", n_bins)
    if strategy not in ("uniform", "quantile"):
        raise must_be(source, "strategy", "'uniform' or 'quantile'", strategy)
    p = as_probability(source, "p_pred", p_pred)
    y = as_binary(source, "outcome", outcome)
    same_length(source, ("p_pred", "outcome"), p, y)
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        edges = np.percentile(p, np.linspace(0.0, 100.0, n_bins + 1))
    # side="left": bins are right-closed, (e_b, e_b+1], as in Guo et al. (2017) and sklearn.
    bin_id = np.searchsorted(edges[1:-1], p, side="left")
    sum_pred = np.bincount(bin_id, weights=p, minlength=n_bins).astype(np.float64)
    sum_obs = np.bincount(bin_id, weights=y, minlength=n_bins).astype(np.float64)
    count = np.bincount(bin_id, minlength=n_bins).astype(np.int64)
    return edges, sum_pred, sum_obs, count, int(p.shape[0])


def expected_calibration_error(
    p_pred: npt.ArrayLike,
    outcome: npt.ArrayLike,
    *,
    n_bins: int = 15,
    strategy: BinStrategy = "uniform",
) -> float:
    """ECE over ``n_bins`` bins of the predicted probability.

    ECE = Σ_b |B_b| / n · |mean(p̂ in B_b) − mean(y in B_b)|
        = Σ_b |Σ_{i∈B_b} p̂_i − Σ_{i∈B_b} y_i| / n,

    ``uniform``: bins B_b = (b/M, (b+1)/M] (the first also holds 0), M = ``n_bins``;
    ``quantile`` (equal-mass, "adaptive" ECE): edges at the 0, 1/M, ..., 1 quantiles of p̂,
    which stays informative when every prediction falls in one equal-width bin.  In [0, 1].

    Shapes: ``p_pred`` [n] in [0, 1], ``outcome`` [n] 0/1.
    Reference: Guo, Pleiss, Sun, Weinberger (2017), "On Calibration of Modern Neural
    Networks", ICML, eq. 3; Naeini, Cooper, Hauskrecht (2015), AAAI; equal-mass bins:
    Nixon et al. (2019), "Measuring Calibration in Deep Learning", CVPR workshops.
    """
    _, sum_pred, sum_obs, _, n = _bin_sums(
        "expected_calibration_error", p_pred, outcome, n_bins, strategy
    )
    return float(np.abs(sum_pred - sum_obs).sum() / n)


def reliability_diagram(
    p_pred: npt.ArrayLike,
    outcome: npt.ArrayLike,
    *,
    n_bins: int = 15,
    strategy: BinStrategy = "uniform",
) -> ReliabilityDiagram:
    """Per-bin mean predicted probability, observed rate and count (bins as in ECE).

    Shapes: ``p_pred`` [n] in [0, 1], ``outcome`` [n] 0/1; every output [n_bins].
    Non-empty bins equal ``sklearn.calibration.calibration_curve(strategy=strategy)``.
    Reference: DeGroot & Fienberg (1983), "The Comparison and Evaluation of Forecasters".
    """
    edges, sum_pred, sum_obs, count, _ = _bin_sums(
        "reliability_diagram", p_pred, outcome, n_bins, strategy
    )
    n = count.astype(np.float64)
    return ReliabilityDiagram(
        lower=edges[:-1],
        upper=edges[1:],
        mean_predicted=safe_ratio(sum_pred, n),
        observed_rate=safe_ratio(sum_obs, n),
        count=count,
    )


@dataclass(frozen=True, slots=True)
class CalibrationSlope:
    """Logistic recalibration logit P(y = 1) = intercept + slope · logit(p̂).

    ``slope`` 1 and ``intercept`` 0: calibrated.  slope < 1: predictions too extreme
    (over-confident); slope > 1: too timid; slope ≤ 0: higher predictions get fewer
    positives.  NaN when it cannot be fitted (fewer than two distinct predictions, or
    outcomes all equal).  ``slope_ci_low``/``high``: Wald interval, from the Fisher
    information, or clustered by ``groups`` when given (``clusters`` of them).

    ``effective_clusters`` (with ``groups``): how many clusters the slope's information
    rests on, Kish's (Σ_g I_g)² / Σ_g I_g² over each cluster's share of the information
    I_g = Σ_{i∈g} q_i(1 − q_i)(x_i − x̄)², x = logit p̂ (x̄ its information-weighted mean).
    A clustered interval is only as good as that count: when a few users hold all the spread
    of the predictions (every other user shown one list with one prediction), the sandwich
    estimator has a handful of scores to estimate a variance from and comes out too narrow.
    """

    slope: float
    intercept: float
    slope_ci_low: float
    slope_ci_high: float
    n: int
    clusters: int | None = None
    effective_clusters: float | None = None

    def measured(self, max_ci_width: float, min_effective_clusters: float = 0.0) -> bool:
        """True when the slope is known to within ``max_ci_width``: its interval is finite
        and no wider, and (when clustered) it rests on at least ``min_effective_clusters``;
        otherwise it says more about the sample than about the predictions."""
        width = self.slope_ci_high - self.slope_ci_low
        enough = (
            self.effective_clusters is None or self.effective_clusters >= min_effective_clusters
        )
        return bool(
            np.isfinite(self.slope) and np.isfinite(width) and width <= max_ci_width and enough
        )


def calibration_slope(
    p_pred: npt.ArrayLike,
    outcome: npt.ArrayLike,
    *,
    groups: npt.ArrayLike | None = None,
    confidence: float = 0.95,
) -> CalibrationSlope:
    """Fit logit P(y = 1 | p̂) = a + b · logit(p̂) by maximum likelihood (Cox 1958).

    x = logit(clip(p̂, 1e-6, 1 − 1e-6)); (a, b) minimise the Bernoulli negative
    log-likelihood (Newton's method, :func:`replay.calibration.fit_platt` without a prior).
    Equals ``sklearn.linear_model.LogisticRegression(C=inf)`` on x.  With H = XᵀWX,
    W = diag(q(1 − q)), q the fitted probabilities, X = [1, x]:

    * without ``groups``: SE(b) = sqrt([H⁻¹]_bb) (observations independent);
    * with ``groups [n]`` (e.g. the user of each request, whose outcomes are correlated):
      the cluster-robust sandwich V = G/(G − 1) · H⁻¹ (Σ_g s_g s_gᵀ) H⁻¹ with the score of
      cluster g, s_g = Σ_{i∈g} (y_i − q_i) X_i, over G clusters (Liang & Zeger 1986).

    Shapes: ``p_pred`` [n] in [0, 1], ``outcome`` [n] 0/1.
    Reference: Cox (1958), "Two Further Applications of a Model for Binary Regression",
    Biometrika 45; Van Calster et al. (2019), "Calibration: the Achilles heel of predictive
    analytics", BMC Medicine 17.
    """
    source = "calibration_slope"
    z = z_value(source, confidence)
    p = as_probability(source, "p_pred", p_pred)
    y = as_binary(source, "outcome", outcome)
    same_length(source, ("p_pred", "outcome"), p, y)
    cluster: npt.NDArray[np.int64] | None = None
    if groups is not None:
        labels = np.asarray(groups)
        if labels.shape != p.shape:
            raise must_be(source, "groups.shape", f"{p.shape} like p_pred", labels.shape)
        cluster = np.unique(labels, return_inverse=True)[1].astype(np.int64)
    n = int(p.shape[0])
    n_clusters = None if cluster is None else int(cluster.max(initial=-1)) + 1
    nan = float("nan")
    undefined = CalibrationSlope(nan, nan, nan, nan, n, n_clusters)
    x = logit(np.clip(p, _LOGIT_EPS, 1.0 - _LOGIT_EPS))
    if n < 3 or np.ptp(x) == 0.0 or y.min() == y.max():
        return undefined
    try:
        fit = fit_platt(x, y, l2=0.0)
    except InternalError:  # separable outcomes: the maximum-likelihood slope is infinite
        return undefined
    q = expit(fit.a * x + fit.b)
    design = np.column_stack([np.ones(n), x])
    hessian = (design * (q * (1.0 - q))[:, None]).T @ design
    if not np.linalg.det(hessian) > 0:
        return CalibrationSlope(fit.a, fit.b, nan, nan, n, n_clusters)
    inverse = np.linalg.inv(hessian)
    effective = None
    if cluster is not None and n_clusters is not None:
        information = q * (1.0 - q)
        centre = float(np.dot(information, x) / information.sum())
        share = np.bincount(cluster, weights=information * (x - centre) ** 2, minlength=n_clusters)
        effective = float(share.sum() ** 2 / np.dot(share, share)) if share.any() else 0.0
    if cluster is None or n_clusters is None:
        variance = float(inverse[1, 1])
    elif n_clusters < 2:
        variance = nan
    else:
        residual = design * (y - q)[:, None]
        scores = np.column_stack(
            [np.bincount(cluster, weights=residual[:, j], minlength=n_clusters) for j in (0, 1)]
        )
        meat = scores.T @ scores * (n_clusters / (n_clusters - 1))
        variance = float((inverse @ meat @ inverse)[1, 1])
    se = float(np.sqrt(variance)) if variance >= 0 else nan
    return CalibrationSlope(fit.a, fit.b, fit.a - z * se, fit.a + z * se, n, n_clusters, effective)


def genre_shares(genres: Any) -> FloatArray:
    """p(g | i): each of an item's genres gets an equal share 1 / |genres(i)|.

    ``genres`` is a dense or scipy-sparse 0/1 matrix [n_items, n_genres]; returns float64
    [n_items, n_genres] whose rows sum to 1, or to 0 for an item without a genre.
    Reference: Steck (2018), "Calibrated Recommendations", RecSys, section 2.
    """
    dense = genres.toarray() if sp.issparse(genres) else genres
    g = as_matrix("genre_shares", "genres", dense)
    if ((g != 0.0) & (g != 1.0)).any():
        raise must_be("genre_shares", "genres", "a 0/1 matrix", float(g[(g != 0) & (g != 1)][0]))
    per_item = g.sum(axis=1, keepdims=True)
    return np.where(per_item > 0, safe_ratio(g, per_item), 0.0)


def user_genre_distribution(history: Any, shares: npt.ArrayLike) -> FloatArray:
    """p(g | u) = Σ_i w_ui p(g | i) / Σ_g Σ_i w_ui p(g | i) over the user's history.

    ``history`` is a scipy-sparse (or dense) matrix [n_users, n_items] of non-negative
    interaction weights w_ui (e.g. ``replay.events.interaction_matrix``; binarise it first to
    count every consumed item once); ``shares`` is :func:`genre_shares` [n_items, n_genres].
    Returns float64 [n_users, n_genres]; rows sum to 1, NaN rows for users with no genre mass
    (empty history, or only genre-less items).
    """
    source = "user_genre_distribution"
    s = as_matrix(source, "shares", shares)
    h = history if sp.issparse(history) else sp.csr_array(as_matrix(source, "history", history))
    if h.shape[1] != s.shape[0]:
        raise must_be(source, "history.shape[1]", f"n_items = {s.shape[0]}", h.shape[1])
    if h.nnz and float(h.data.min()) < 0:
        raise must_be(source, "history", "non-negative weights", float(h.data.min()))
    mass = np.asarray(sp.csr_array(h, dtype=np.float64) @ s)
    return safe_ratio(mass, mass.sum(axis=1, keepdims=True))


def list_genre_distribution(
    items: npt.ArrayLike, shares: npt.ArrayLike, *, rank_weights: npt.ArrayLike | None = None
) -> FloatArray:
    """q(g | list) = Σ_r w_r p(g | i_r) / Σ_g Σ_r w_r p(g | i_r) over a list's filled slots.

    Shapes: ``items`` int32 [n, K] (-1 = empty), ``shares`` [n_items, n_genres],
    ``rank_weights`` [K] (default: 1 for every rank).  Returns float64 [n, n_genres];
    all-zero rows for lists without any genre (then q̃ = α p in :func:`steck_kl`).
    """
    source = "list_genre_distribution"
    s = as_matrix(source, "shares", shares)
    lists = as_lists(source, "items", items, n_items=s.shape[0])
    k = lists.shape[1]
    w = np.ones(k) if rank_weights is None else np.asarray(rank_weights, dtype=np.float64)
    if w.shape != (k,) or not np.isfinite(w).all() or (w < 0).any():
        raise must_be(source, "rank_weights", f"{k} finite non-negative numbers", w.tolist())
    out = np.empty((lists.shape[0], s.shape[1]))
    # Zero row for empty slots: index -1 picks it after appending.
    padded = np.vstack([s, np.zeros((1, s.shape[1]))])
    for start in range(0, lists.shape[0], _LIST_BLOCK):
        block = lists[start : start + _LIST_BLOCK]
        out[start : start + block.shape[0]] = np.einsum("nkg,k->ng", padded[block], w)
    total = out.sum(axis=1, keepdims=True)
    return np.where(total > 0, safe_ratio(out, total), 0.0)


def steck_kl(p: npt.ArrayLike, q: npt.ArrayLike, *, alpha: float = 0.01) -> FloatArray:
    """Steck's calibration metric C_KL(p, q) = Σ_g p(g) log(p(g) / q̃(g)), in nats.

    q̃ = (1 − α) q + α p keeps the ratio finite where the list misses a genre of the history;
    genres with p(g) = 0 contribute 0.  0 when the list has the history's proportions; at
    most log(1/α) ≈ 4.6 nats for α = 0.01.

    Shapes: ``p``, ``q`` [n_users, n_genres], rows are distributions (or NaN rows for p).
    Returns float64 [n_users], NaN where p is NaN.
    Reference: Steck (2018), "Calibrated Recommendations", RecSys, eq. 4.
    """
    source = "steck_kl"
    if not 0.0 < alpha < 1.0:
        raise must_be(source, "alpha", "in (0, 1)", alpha)
    pa = np.asarray(p, dtype=np.float64)
    qa = np.asarray(q, dtype=np.float64)
    if pa.ndim != 2 or pa.shape != qa.shape:
        raise must_be(source, "q.shape", f"equal to p.shape = {pa.shape} (2-D)", qa.shape)
    valid = np.asarray(np.isfinite(pa).all(axis=1), dtype=np.bool_)
    p0 = np.where(valid[:, None], pa, 0.0)
    q_tilde = (1.0 - alpha) * qa + alpha * p0
    pos = p0 > 0
    ratio = np.ones_like(p0)
    np.divide(p0, q_tilde, out=ratio, where=pos)
    terms = np.where(pos, p0 * np.log(ratio), 0.0)
    return np.where(valid, terms.sum(axis=1), np.nan)


def genre_calibration_kl(
    items: npt.ArrayLike, history: Any, genres: Any, *, alpha: float = 0.01
) -> FloatArray:
    """Steck's C_KL per list: row r of ``items`` is judged against row r of ``history``.

    Shapes: ``items`` int32 [n, K], ``history`` sparse [n, n_items] weights, ``genres`` 0/1
    [n_items, n_genres].  Returns float64 [n] (NaN for users without genre history).
    Composes :func:`genre_shares`, :func:`user_genre_distribution`,
    :func:`list_genre_distribution` and :func:`steck_kl`.
    """
    shares = genre_shares(genres)
    lists = as_lists("genre_calibration_kl", "items", items, n_items=shares.shape[0])
    if history.shape[0] != lists.shape[0]:
        raise must_be(
            "genre_calibration_kl",
            "history.shape[0]",
            f"{lists.shape[0]} (one row per list)",
            history.shape[0],
        )
    p = user_genre_distribution(history, shares)
    q = list_genre_distribution(lists, shares)
    return steck_kl(p, q, alpha=alpha)


def pseudo_genres(
    item_factors: npt.ArrayLike,
    *,
    n_genres: int = 16,
    rng: np.random.Generator,
    max_iter: int = 50,
) -> npt.NDArray[np.int8]:
    """One-hot pseudo-genres [n_items, n_genres] from k-means on the item factors.

    For catalogues without genre metadata.  Rows are L2-normalised first (spherical k-means)
    so clusters follow the direction of taste, not the factor norm, which mostly tracks
    popularity.  k-means++ seeding (Arthur & Vassilvitskii 2007) from ``rng``, then Lloyd
    iterations until assignments stop changing or ``max_iter``; an emptied cluster is
    re-seeded with the item farthest from its centre.  Items with a zero factor vector go to
    the cluster of the zero direction's nearest centre like any other point.
    """
    source = "pseudo_genres"
    x = as_matrix(source, "item_factors", item_factors)
    n = x.shape[0]
    if not (isinstance(n_genres, int) and 1 <= n_genres <= n):
        raise must_be(source, "n_genres", f"an integer in [1, n_items = {n}]", n_genres)
    if not (isinstance(max_iter, int) and max_iter >= 1):
        raise must_be(source, "max_iter", "an integer >= 1", max_iter)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = np.where(norms > 0, x / np.where(norms > 0, norms, 1.0), 0.0)
    sq = (x * x).sum(axis=1)

    def sq_dist(centres: FloatArray) -> FloatArray:
        d: FloatArray = sq[:, None] - 2.0 * (x @ centres.T) + (centres * centres).sum(axis=1)
        return np.maximum(d, 0.0)

    centres = np.empty((n_genres, x.shape[1]))
    centres[0] = x[rng.integers(n)]
    closest = sq_dist(centres[:1])[:, 0]
    for c in range(1, n_genres):  # loop over clusters, not items
        total = closest.sum()
        pick = int(rng.choice(n, p=closest / total)) if total > 0 else int(rng.integers(n))
        centres[c] = x[pick]
        closest = np.minimum(closest, sq_dist(centres[c : c + 1])[:, 0])
    labels = np.full(n, -1, dtype=np.int64)
    for _ in range(max_iter):
        dist = sq_dist(centres)
        new = dist.argmin(axis=1)
        sizes = np.bincount(new, minlength=n_genres)
        for empty in np.flatnonzero(sizes == 0):
            far = int(dist[np.arange(n), new].argmax())
            new[far] = empty
            dist[far] = 0.0
        if np.array_equal(new, labels):
            break
        labels = new
        sums = np.zeros_like(centres)
        np.add.at(sums, labels, x)
        # A cluster can stay empty when there are fewer distinct items than clusters.
        centres = sums / np.maximum(np.bincount(labels, minlength=n_genres), 1)[:, None]
    one_hot = np.zeros((n, n_genres), dtype=np.int8)
    one_hot[np.arange(n), labels] = 1
    return one_hot
