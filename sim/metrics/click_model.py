"""A position-based click model fitted from a slate log, and the value of a ranking under it.

The position-based model (PBM; Craswell et al. 2008, Chuklin, Markov & de Rijke 2015,
"Click Models for Web Search", ch. 3) says a shown item is clicked when its position k is
examined and the item is attractive, independently:

    P(C = 1 | item i at position k) = θ_k · α_i

θ_k is the examination probability of position k, α_i the attractiveness of item i.  Both
are fitted by expectation-maximisation on the log's rows (one row per shown item): with
p = θ_k α_i, a click means examined and attractive; no click has the posteriors

    P(E = 1 | C = 0) = θ_k (1 − α_i) / (1 − p)      P(A = 1 | C = 0) = (1 − θ_k) α_i / (1 − p)

and θ_k (α_i) is the mean posterior over the rows at k (of i).  Only products θ_k α_i are
identified (θ·s, α/s fit equally well), so examination is reported relative to the top
position, θ_k / θ_0, which items shown at several positions identify.

The fit is reported against the position-blind model (each item its own CTR, θ constant):
log-likelihood per row, perplexity 2^(−mean log₂ P(c)) per position (1 = perfect, 2 = a
coin), and the likelihood-ratio statistic 2 (ℓ_PBM − ℓ_blind) on P − 1 degrees of freedom
(the blind model is the PBM with equal θ).  Intervals: percentiles of a cluster bootstrap
over slates (Poisson(1) weights per slate, each replicate refitted).

The *direct* value of a ranking is the expected clicks per slate the fitted model gives it,
mean over slates of Σ_k θ_k α_{item at k}; items the log never showed get the rows' mean
attractiveness and are counted.  Over a log whose slates do not show every position (the
Open Bandit Dataset logs one position per row), :func:`direct_value_at` sums each slate over
the positions it logged, the quantity slate IPS estimates there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from replay.distributions import chi2_sf
from replay.errors import must_be

__all__ = [
    "ClickModelFit",
    "PositionBasedModel",
    "direct_value",
    "direct_value_at",
    "fit_position_based",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Probabilities are kept inside [EPS, 1 − EPS] so that no log-likelihood term is infinite.
EPS = 1e-6


@dataclass(frozen=True, slots=True)
class PositionBasedModel:
    """θ [P] examination per position, α [n_items] attractiveness (NaN: never shown)."""

    examination: FloatArray
    attractiveness: FloatArray
    iterations: int
    converged: bool

    @property
    def relative_examination(self) -> FloatArray:
        """θ_k / θ_0: examination against the top position (the identified part)."""
        return np.asarray(self.examination / self.examination[0], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class ClickModelFit:
    """A fitted PBM with its fit and bootstrap replicates (see the module docstring).

    ``relative_ci95`` [P, 2]: percentile interval of θ_k / θ_0; ``log_likelihood`` and
    ``blind_log_likelihood``: per row; ``perplexity`` and ``blind_perplexity`` [P];
    ``likelihood_ratio``, ``p_value``: PBM against the position-blind model.
    """

    model: PositionBasedModel
    replicates: tuple[PositionBasedModel, ...]
    slate_weights: FloatArray  # [B, S] the replicates' Poisson weights per slate
    relative_ci95: FloatArray
    rows: int
    slates: int
    log_likelihood: float
    blind_log_likelihood: float
    perplexity: FloatArray
    blind_perplexity: FloatArray
    likelihood_ratio: float
    p_value: float


def _posterior_mean(group: IntArray, posterior: FloatArray, totals: FloatArray) -> FloatArray:
    """M-step: Σ posterior / Σ rows per group (0.5 for a group without rows), kept in
    [EPS, 1 − EPS]."""
    sums = np.bincount(group, weights=posterior, minlength=totals.size)
    mean = np.divide(sums, totals, out=np.full(totals.size, 0.5), where=totals > 0)
    return np.asarray(np.clip(mean, EPS, 1 - EPS), dtype=np.float64)


def _em(
    position: IntArray,
    item: IntArray,
    click: FloatArray,
    weight: FloatArray,
    n_positions: int,
    n_items: int,
    *,
    start: PositionBasedModel | None,
    max_iterations: int,
    tolerance: float,
) -> PositionBasedModel:
    """EM on the (position, item) cells the log holds: n rows and c clicks each (weighted),
    so that an iteration costs the number of such cells, at most P × n_items and at most
    the number of rows."""
    cells, inverse = np.unique(position * n_items + item, return_inverse=True)
    k, i = cells // n_items, cells % n_items
    n = np.bincount(inverse.ravel(), weights=weight, minlength=cells.size)
    c = np.bincount(inverse.ravel(), weights=weight * click, minlength=cells.size)
    misses = n - c
    by_position = np.bincount(k, weights=n, minlength=n_positions).astype(np.float64)
    by_item = np.bincount(i, weights=n, minlength=n_items).astype(np.float64)
    if start is None:
        theta = np.full(n_positions, 0.5)
        clicks = np.bincount(i, weights=c, minlength=n_items)
        ctr = np.divide(clicks, by_item, out=np.zeros(n_items), where=by_item > 0)
        alpha = np.clip(ctr / 0.5, 0.01, 0.99)
    else:
        theta, alpha = start.examination.copy(), np.nan_to_num(start.attractiveness, nan=0.5)
    previous = -np.inf
    converged = False
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        t, a = theta[k], alpha[i]
        rest = np.maximum(1.0 - t * a, EPS)
        examined = c + misses * t * (1.0 - a) / rest
        attractive = c + misses * (1.0 - t) * a / rest
        theta = _posterior_mean(k, examined, by_position)
        alpha = _posterior_mean(i, attractive, by_item)
        q = np.clip(theta[k] * alpha[i], EPS, 1 - EPS)
        ll = float(np.sum(c * np.log(q) + misses * np.log1p(-q)))
        # Converged when the log-likelihood gains less than ``tolerance`` per row.
        if ll - previous < tolerance * n.sum():
            converged = True
            break
        previous = ll
    alpha = np.where(by_item > 0, alpha, np.nan)
    return PositionBasedModel(theta, alpha, iterations, converged)


def _log_terms(click: FloatArray, p: FloatArray) -> FloatArray:
    q = np.clip(p, EPS, 1 - EPS)
    return np.asarray(click * np.log(q) + (1 - click) * np.log1p(-q), dtype=np.float64)


def _perplexity(terms: FloatArray, position: IntArray, n_positions: int) -> FloatArray:
    rows = np.bincount(position, minlength=n_positions)
    mean = np.bincount(position, weights=terms, minlength=n_positions) / np.maximum(rows, 1)
    return np.asarray(2.0 ** (-mean / np.log(2.0)), dtype=np.float64)


def fit_position_based(
    position: npt.ArrayLike,
    item: npt.ArrayLike,
    click: npt.ArrayLike,
    slate: npt.ArrayLike,
    *,
    n_items: int,
    bootstrap: int = 40,
    seed: int = 0,
    max_iterations: int = 20_000,
    tolerance: float = 1e-10,
) -> ClickModelFit:
    """Fit the PBM on a slate log's rows: ``position`` [n] (0 = top), ``item`` [n] (dense ids
    < ``n_items``), ``click`` [n] 0/1, ``slate`` [n] (the impression a row belongs to).

    ``bootstrap`` replicates (Poisson weights per slate, ``seed``) give the intervals.
    """
    source = "fit_position_based"
    k = np.asarray(position, dtype=np.int64)
    i = np.asarray(item, dtype=np.int64)
    c = np.asarray(click, dtype=np.float64)
    if not (k.shape == i.shape == c.shape) or k.ndim != 1 or k.size == 0:
        raise must_be(source, "item.shape", f"{k.shape} like position, not empty", i.shape)
    if (k < 0).any() or (i < 0).any() or (i >= n_items).any():
        raise must_be(source, "position, item", f"positions >= 0 and items in [0, {n_items})", "")
    if ((c != 0) & (c != 1)).any():
        raise must_be(source, "click", "0/1 values", np.unique(c)[:5].tolist())
    groups = np.unique(np.asarray(slate), return_inverse=True)[1].ravel()
    n_positions = int(k.max()) + 1
    fit = _em(
        k,
        i,
        c,
        np.ones(k.size),
        n_positions,
        n_items,
        start=None,
        max_iterations=max_iterations,
        tolerance=tolerance,
    )
    rng = np.random.default_rng(seed)
    n_slates = int(groups.max()) + 1
    draws = rng.poisson(1.0, size=(bootstrap, n_slates)).astype(np.float64)
    replicates = tuple(
        _em(
            k,
            i,
            c,
            draws[b, groups],
            n_positions,
            n_items,
            start=fit,
            max_iterations=max_iterations,
            tolerance=tolerance,
        )
        for b in range(bootstrap)
    )
    relative = np.array([r.relative_examination for r in replicates]).reshape(-1, n_positions)
    ci = (
        np.percentile(relative, [2.5, 97.5], axis=0).T
        if bootstrap >= 2
        else np.full((n_positions, 2), np.nan)
    )
    pbm_terms = _log_terms(c, fit.examination[k] * np.nan_to_num(fit.attractiveness[i]))
    rows_i = np.bincount(i, minlength=n_items)
    item_ctr = np.bincount(i, weights=c, minlength=n_items) / np.maximum(rows_i, 1)
    blind_terms = _log_terms(c, item_ctr[i])
    ratio = float(2.0 * (pbm_terms.sum() - blind_terms.sum()))
    return ClickModelFit(
        model=fit,
        replicates=replicates,
        slate_weights=draws,
        relative_ci95=ci,
        rows=int(k.size),
        slates=n_slates,
        log_likelihood=float(pbm_terms.mean()),
        blind_log_likelihood=float(blind_terms.mean()),
        perplexity=_perplexity(pbm_terms, k, n_positions),
        blind_perplexity=_perplexity(blind_terms, k, n_positions),
        likelihood_ratio=ratio,
        p_value=float(chi2_sf(max(ratio, 0.0), max(n_positions - 1, 1))),
    )


def direct_value(
    model: PositionBasedModel, ranking: npt.ArrayLike, weights: npt.ArrayLike | None = None
) -> tuple[float, float]:
    """``(value, unseen_share)``: expected clicks per slate of ``ranking`` int [S, K] (the
    items a policy puts at positions 0..K−1 of each slate, −1 = empty) under ``model``, the
    ``weights`` [S]-weighted mean of Σ_{k < min(K, P)} θ_k α_item; items without an
    attractiveness (never in the log) get the mean of the others, and ``unseen_share`` is
    their share of the filled slots."""
    table = np.asarray(ranking, dtype=np.int64)
    if table.ndim != 2:
        raise must_be("direct_value", "ranking", "a matrix [slates, K]", table.shape)
    depth = min(table.shape[1], model.examination.size)
    shown = table[:, :depth]
    filled = shown >= 0
    alpha = model.attractiveness
    known = np.isfinite(alpha)
    fallback = float(alpha[known].mean()) if known.any() else 0.0
    a = np.where(filled, alpha[np.where(filled, shown, 0)], 0.0)
    unseen = filled & ~np.isfinite(a)
    a = np.where(unseen, fallback, a)
    per_slate = (a * model.examination[:depth]).sum(axis=1)
    w = np.ones(table.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    value = float(np.average(per_slate, weights=w)) if w.sum() > 0 else float("nan")
    return value, float(unseen.sum() / max(int(filled.sum()), 1))


def direct_value_at(
    model: PositionBasedModel,
    shown: npt.ArrayLike,
    position: npt.ArrayLike,
    slate: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
) -> tuple[float, float]:
    """``(value, unseen_share)`` over the log's rows: expected clicks per slate when a policy
    shows ``shown`` int [n] (−1 = nothing) at each row's ``position`` [n], summed over the
    rows of each slate (``slate`` [n], dense ids 0..S−1) and averaged over slates with
    ``weights`` [S]:

        V = Σ_s w_s Σ_{rows r of s} θ_{k_r} α_{shown_r} / Σ_s w_s

    A slate that logged every position gives :func:`direct_value`'s Σ_k θ_k α_{item at k};
    one that logged a single position (the Open Bandit Dataset) its own position's term,
    which is what slate IPS estimates on such a log.  Items never in the log get the mean α.
    """
    item = np.asarray(shown, dtype=np.int64)
    k = np.asarray(position, dtype=np.int64)
    group = np.asarray(slate, dtype=np.int64)
    if not (item.shape == k.shape == group.shape) or item.ndim != 1:
        raise must_be("direct_value_at", "shown.shape", f"{k.shape} like position", item.shape)
    alpha = model.attractiveness
    known = np.isfinite(alpha)
    fallback = float(alpha[known].mean()) if known.any() else 0.0
    examined = k < model.examination.size
    filled = (item >= 0) & examined
    a = np.where(filled, alpha[np.where(filled, item, 0)], 0.0)
    unseen = filled & ~np.isfinite(a)
    a = np.where(unseen, fallback, a)
    term = a * model.examination[np.where(examined, k, 0)]
    n_slates = int(group.max(initial=-1)) + 1
    per_slate = np.bincount(group, weights=term, minlength=n_slates)
    w = np.ones(n_slates) if weights is None else np.asarray(weights, dtype=np.float64)
    value = float(np.average(per_slate, weights=w)) if w.sum() > 0 else float("nan")
    return value, float(unseen.sum() / max(int(filled.sum()), 1))
