"""Diversity and popularity bias of recommendation lists.

Per-list metrics take a table ``items`` int32 [n_lists, K] (ranked item ids, -1 for an
empty slot) and return float64 [n_lists]; NaN where a list is too short for the metric.
Score the per-user top-K table of a version once and index the result by the request log's
``user`` column to weight by requests, instead of scoring a list per request.

Catalogue metrics (coverage, Gini of exposure) take the same table plus optional per-list
weights (e.g. requests per user) and return one number.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from replay.errors import must_be
from sim.metrics._checks import (
    FloatArray,
    as_1d_float,
    as_lists,
    as_matrix,
    safe_ratio,
)

__all__ = [
    "average_recommended_popularity",
    "catalogue_coverage",
    "exposure_counts",
    "exposure_gini",
    "genre_intra_list_diversity",
    "gini",
    "intra_list_diversity",
    "novelty",
]

# Lists per block for [block, K, f] gathers: about 40 MB at K = 10, f = 32, float64.
_LIST_BLOCK = 1 << 14


def _n_items(source: str, n_items: int) -> int:
    if not (isinstance(n_items, int | np.integer) and int(n_items) >= 1):
        raise must_be(source, "n_items", "an integer >= 1", n_items)
    return int(n_items)


def _weights(source: str, weights: npt.ArrayLike | None, n: int) -> FloatArray | None:
    if weights is None:
        return None
    w = as_1d_float(source, "weights", weights, min_size=0)
    if w.shape[0] != n:
        raise must_be(source, "weights.shape", f"({n},), one weight per list", w.shape)
    if (w < 0).any():
        raise must_be(source, "weights", "non-negative", float(w[w < 0][0]))
    return w


def intra_list_diversity(items: npt.ArrayLike, item_factors: npt.ArrayLike) -> FloatArray:
    """Mean pairwise cosine distance of item factors within each list.

    ILD(L) = 1 / (m(m − 1)) · Σ_{i≠j ∈ L} (1 − cos(v_i, v_j)),  m = filled slots of L.

    With unit vectors u_i = v_i / ‖v_i‖ the pair sum needs no K×K matrix:
    Σ_{i≠j} u_i·u_j = ‖Σ_i u_i‖² − Σ_i ‖u_i‖², which is O(K f) per list instead of O(K² f).
    An all-zero factor vector has cosine 0 with everything (distance 1).

    Shapes: ``items`` int32 [n, K], ``item_factors`` [n_items, f]; returns float64 [n],
    NaN for lists with fewer than two items.  In [0, 2] (cosine distance of opposite vectors
    is 2; ALS factors make that rare).
    Reference: Ziegler, McNee, Konstan, Lausen (2005), "Improving Recommendation Lists
    Through Topic Diversification", WWW; Smyth & McClave (2001).
    """
    source = "intra_list_diversity"
    x = as_matrix(source, "item_factors", item_factors)
    lists = as_lists(source, "items", items, n_items=x.shape[0])
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = np.vstack(
        [np.where(norms > 0, x / np.where(norms > 0, norms, 1.0), 0.0), np.zeros((1, x.shape[1]))]
    )  # row -1: empty slot contributes nothing
    m = (lists >= 0).sum(axis=1).astype(np.float64)
    cos_sum = np.empty(lists.shape[0])
    for start in range(0, lists.shape[0], _LIST_BLOCK):
        u = unit[lists[start : start + _LIST_BLOCK]]
        total = u.sum(axis=1)
        cos_sum[start : start + u.shape[0]] = (total * total).sum(axis=1) - (u * u).sum(axis=(1, 2))
    pairs = m * (m - 1.0)
    return 1.0 - safe_ratio(cos_sum, pairs)


def genre_intra_list_diversity(items: npt.ArrayLike, genres: Any) -> FloatArray:
    """Mean pairwise Jaccard distance between the genre sets of a list's items.

    ILD_genre(L) = 1 / (m(m − 1)) · Σ_{i≠j ∈ L} (1 − |G_i ∩ G_j| / |G_i ∪ G_j|); two items
    without any genre are at distance 0 (equal, empty sets).  Intersections for all pairs of
    a batch of lists come from one batched matmul [n, K, n_genres] @ [n, n_genres, K].

    Shapes: ``items`` int32 [n, K], ``genres`` dense or scipy-sparse 0/1 [n_items, n_genres];
    returns float64 [n] in [0, 1], NaN for lists with fewer than two items.
    Reference: Ziegler et al. (2005) with the Jaccard distance of genre sets as in
    Vargas & Castells (2011), "Rank and Relevance in Novelty and Diversity Metrics".
    """
    source = "genre_intra_list_diversity"
    dense = genres.toarray() if sp.issparse(genres) else genres
    g = as_matrix(source, "genres", dense)
    if ((g != 0.0) & (g != 1.0)).any():
        raise must_be(source, "genres", "a 0/1 matrix", float(g[(g != 0) & (g != 1)][0]))
    lists = as_lists(source, "items", items, n_items=g.shape[0])
    padded = np.vstack([g, np.zeros((1, g.shape[1]))]).astype(np.float32)
    k = lists.shape[1]
    off_diag = ~np.eye(k, dtype=np.bool_)
    out = np.empty(lists.shape[0])
    for start in range(0, lists.shape[0], _LIST_BLOCK):
        block = lists[start : start + _LIST_BLOCK]
        sets = padded[block]  # [b, K, G]
        inter = np.matmul(sets, sets.transpose(0, 2, 1)).astype(np.float64)  # [b, K, K]
        size = sets.sum(axis=2, dtype=np.float64)
        union = size[:, :, None] + size[:, None, :] - inter
        dist = np.where(union > 0, 1.0 - safe_ratio(inter, union), 0.0)
        valid = block >= 0
        pair = valid[:, :, None] & valid[:, None, :] & off_diag
        m = valid.sum(axis=1).astype(np.float64)
        out[start : start + block.shape[0]] = safe_ratio(
            np.where(pair, dist, 0.0).sum(axis=(1, 2)), m * (m - 1.0)
        )
    return out


def exposure_counts(
    items: npt.ArrayLike, n_items: int, *, weights: npt.ArrayLike | None = None
) -> FloatArray:
    """Exposure of every catalogue item: e_i = Σ_lists w_list · [i ∈ list].

    Shapes: ``items`` int32 [n, K], ``weights`` [n] (default 1 per list, e.g. requests per
    user); returns float64 [n_items], zeros for items never shown.
    """
    source = "exposure_counts"
    size = _n_items(source, n_items)
    lists = as_lists(source, "items", items, n_items=size)
    w = _weights(source, weights, lists.shape[0])
    filled = lists >= 0
    flat = lists[filled]
    if w is None:
        return np.bincount(flat, minlength=size).astype(np.float64)
    per_slot = np.broadcast_to(w[:, None], lists.shape)[filled]
    return np.bincount(flat, weights=per_slot, minlength=size).astype(np.float64)


def catalogue_coverage(
    items: npt.ArrayLike, n_items: int, *, weights: npt.ArrayLike | None = None
) -> float:
    """Coverage = |distinct items shown| / n_items, in [0, 1].

    Lists with weight 0 (users who made no request) show nothing.  Shapes as in
    :func:`exposure_counts`.  Reference: Ge, Delgado-Battenfeld, Jannach (2010), "Beyond
    Accuracy: Evaluating Recommender Systems by Coverage and Serendipity", RecSys.
    """
    exposure = exposure_counts(items, n_items, weights=weights)
    return float((exposure > 0).sum() / exposure.shape[0])


def gini(values: npt.ArrayLike) -> float:
    """Gini coefficient of non-negative values (0 = all equal, → 1 = all on one).

    With x sorted ascending, i = 1..n:  G = Σ_i (2i − n − 1) x_i / (n Σ_i x_i).
    At most 1 − 1/n.  Shape: [n], n >= 1, Σ x > 0.
    Reference: Damgaard & Weiner (2000), Ecology 81(4); for exposure, Fleder & Hosanagar
    (2009), "Blockbuster Culture's Next Rise or Fall", Management Science.
    """
    x = np.sort(as_1d_float("gini", "values", values))
    if x[0] < 0:
        raise must_be("gini", "values", "non-negative", float(x[0]))
    total = x.sum()
    if not total > 0:
        raise must_be("gini", "values", "of positive sum", float(total))
    n = x.shape[0]
    rank = np.arange(1, n + 1, dtype=np.float64)
    # Equal values sum to 0 only up to rounding: never report a (tiny) negative Gini.
    return max(0.0, float(((2.0 * rank - n - 1.0) * x).sum() / (n * total)))


def exposure_gini(
    items: npt.ArrayLike, n_items: int, *, weights: npt.ArrayLike | None = None
) -> float:
    """Gini of item exposure over the whole catalogue (never-shown items count as 0).

    ``gini(exposure_counts(items, n_items, weights=weights))``; in [0, 1 − 1/n_items].
    """
    return gini(exposure_counts(items, n_items, weights=weights))


def _popularity(source: str, popularity: npt.ArrayLike) -> FloatArray:
    pop = as_1d_float(source, "popularity", popularity)
    if (pop < 0).any():
        raise must_be(source, "popularity", "non-negative counts", float(pop[pop < 0][0]))
    return pop


def _slot_mean(lists: npt.NDArray[np.int32], per_item: FloatArray) -> FloatArray:
    padded = np.append(per_item, 0.0)
    filled = (lists >= 0).sum(axis=1).astype(np.float64)
    return safe_ratio(padded[lists].sum(axis=1), filled)


def novelty(
    items: npt.ArrayLike, popularity: npt.ArrayLike, *, pseudo_count: float = 0.0
) -> FloatArray:
    """Mean self-information of a list's items: mean_{i ∈ L} −log2(share_i), in bits.

    share_i = (pop_i + c) / (Σ_j pop_j + c · n_items) with c = ``pseudo_count``: with the
    default c = 0 it is the plain popularity share, and showing an item of zero popularity
    is an error (its novelty is infinite); pass c > 0 (e.g. 1) when lists may hold items new
    since the popularity was counted.

    Shapes: ``items`` int32 [n, K], ``popularity`` counts [n_items]; returns float64 [n],
    NaN for empty lists.  Reference: Zhou et al. (2010), "Solving the apparent diversity-
    accuracy dilemma of recommender systems", PNAS 107(10); Vargas & Castells (2011).
    """
    source = "novelty"
    pop = _popularity(source, popularity)
    if not (pseudo_count >= 0 and np.isfinite(pseudo_count)):
        raise must_be(source, "pseudo_count", "finite and >= 0", pseudo_count)
    lists = as_lists(source, "items", items, n_items=pop.shape[0])
    smoothed = pop + pseudo_count
    total = smoothed.sum()
    if not total > 0:
        raise must_be(source, "popularity", "of positive sum", float(pop.sum()))
    shown = np.zeros(pop.shape[0], dtype=np.bool_)
    shown[lists[lists >= 0]] = True
    zero = shown & (smoothed == 0)
    if zero.any():
        item = int(np.flatnonzero(zero)[0])
        raise must_be(
            source,
            f"popularity[{item}]",
            "> 0 for an item that is shown",
            float(pop[item]),
            hint="pass pseudo_count > 0 to smooth items never seen when popularity was counted",
        )
    info = np.zeros_like(smoothed)
    np.log2(smoothed / total, out=info, where=smoothed > 0)
    return _slot_mean(lists, -info)


def average_recommended_popularity(items: npt.ArrayLike, popularity: npt.ArrayLike) -> FloatArray:
    """ARP per list = mean_{i ∈ L} pop_i (popularity in the unit given, e.g. counts).

    Shapes: ``items`` int32 [n, K], ``popularity`` [n_items]; returns float64 [n], NaN for
    empty lists.  Reference: Abdollahpouri, Burke, Mobasher (2019), "Managing Popularity
    Bias in Recommender Systems with Personalized Re-ranking", FLAIRS.
    """
    source = "average_recommended_popularity"
    pop = _popularity(source, popularity)
    lists = as_lists(source, "items", items, n_items=pop.shape[0])
    return _slot_mean(lists, pop)
