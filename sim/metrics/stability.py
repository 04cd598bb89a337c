"""Stability: how much the lists two versions give the same user differ, and what users see.

- Jaccard@K and rank-biased overlap (RBO, p = 0.9, extrapolated) between two top-K tables,
  row r of one against row r of the other (the same user), vectorized over users.
- Churn when a user's version changes between consecutive requests in the request log.
- A noise floor: baseline against the baseline retrained with another seed shows how much
  lists move for no reason; a candidate is judged relative to that.

Lists are int32 [n, K] of ranked item ids with -1 for an empty slot; no item twice in a list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from replay.errors import must_be
from sim.metrics._checks import (
    FloatArray,
    ItemArray,
    as_1d_float,
    as_lists,
    require_columns,
    safe_ratio,
    same_length,
    truncate,
    z_value,
)

__all__ = [
    "NoiseFloorComparison",
    "jaccard_at_k",
    "rank_biased_overlap",
    "relative_to_noise_floor",
    "version_change_churn",
]

# Rows per block for the [block, K, K] pairwise-equality temporary (~6.5 MB at K = 10).
_ROW_BLOCK = 1 << 16


@dataclass(frozen=True, slots=True)
class NoiseFloorComparison:
    """A candidate's per-user Jaccard against the seed-noise floor, on the same users.

    ``difference = mean_candidate − mean_floor`` (negative: the candidate moves lists more
    than retraining noise does) with a paired normal interval; ``change_ratio =
    (1 − mean_candidate) / (1 − mean_floor)`` (1 = as much change as seed noise; NaN when the
    floor shows no change at all).
    """

    mean_candidate: float
    mean_floor: float
    difference: float
    ci_low: float
    ci_high: float
    change_ratio: float
    n_users: int
    confidence: float


def _pair(
    source: str, a: npt.ArrayLike, b: npt.ArrayLike, k: int | None
) -> tuple[ItemArray, ItemArray]:
    la = truncate(source, as_lists(source, "a", a), k)
    lb = truncate(source, as_lists(source, "b", b), k)
    if la.shape != lb.shape:
        raise must_be(source, "b.shape", f"equal to a.shape = {la.shape}", lb.shape)
    return la, lb


def _equal_pairs(a: ItemArray, b: ItemArray) -> npt.NDArray[np.bool_]:
    """eq[r, i, j] = a[r, i] is b[r, j] (a filled slot)."""
    eq: npt.NDArray[np.bool_] = (a[:, :, None] == b[:, None, :]) & (a >= 0)[:, :, None]
    return eq


def _overlap(a: ItemArray, b: ItemArray) -> FloatArray:
    out = np.empty(a.shape[0])
    for start in range(0, a.shape[0], _ROW_BLOCK):
        sl = slice(start, start + _ROW_BLOCK)
        out[sl] = _equal_pairs(a[sl], b[sl]).sum(axis=(1, 2))
    return out


def jaccard_at_k(a: npt.ArrayLike, b: npt.ArrayLike, *, k: int | None = None) -> FloatArray:
    """Jaccard@K per row: |A ∩ B| / |A ∪ B| of the sets of the first k filled items.

    Shapes: ``a``, ``b`` int32 [n, K] (-1 = empty); returns float64 [n] in [0, 1]; 1 when
    both lists are empty (equal sets).  Reference: Jaccard (1901); used for recommendation
    stability by Adomavicius & Zhang (2012), "Stability of Recommendation Algorithms", TOIS.
    """
    la, lb = _pair("jaccard_at_k", a, b, k)
    inter = _overlap(la, lb)
    union = (la >= 0).sum(axis=1) + (lb >= 0).sum(axis=1) - inter
    return np.where(union > 0, safe_ratio(inter, union), 1.0)


def rank_biased_overlap(
    a: npt.ArrayLike, b: npt.ArrayLike, *, p: float = 0.9, k: int | None = None
) -> FloatArray:
    """Extrapolated rank-biased overlap RBO_ext per row (Webber, Moffat, Zobel 2010, eq. 32).

    With X_d = |S_{:d} ∩ L_{:d}| the overlap at depth d, s and l the lengths (filled slots)
    of the shorter and longer list::

        RBO_ext = (1 − p)/p · ( Σ_{d=1..l} X_d/d · p^d + Σ_{d=s+1..l} X_s (d − s)/(s d) · p^d )
                  + ( (X_l − X_s)/l + X_s/s ) · p^l

    For equal lengths (s = l = K) this is (1 − p)/p · Σ_{d=1..K} X_d/d · p^d + X_K/K · p^K.
    Identical lists give 1 and disjoint lists 0.  Empty slots (-1) must trail the filled
    ones; two empty lists give 1, one empty list 0.

    Shapes: ``a``, ``b`` int32 [n, K]; returns float64 [n] in [0, 1].
    Reference: Webber, Moffat, Zobel (2010), "A Similarity Measure for Indefinite
    Rankings", ACM TOIS 28(4), eq. 32.
    """
    source = "rank_biased_overlap"
    if not (isinstance(p, float | int) and 0.0 < p < 1.0):
        raise must_be(source, "p", "in (0, 1)", p)
    la, lb = _pair(source, a, b, k)
    n, width = la.shape
    for name, lists in (("a", la), ("b", lb)):
        filled = lists >= 0
        gap = filled[:, 1:] & ~filled[:, :-1]
        if gap.any():
            row = int(np.flatnonzero(gap.any(axis=1))[0])
            raise must_be(
                source, f"{name}[{row}]", "padded with -1 only at the end", lists[row].tolist()
            )
    if width == 0:
        return np.ones(n)
    # depth_of_pair[i, j] = max(i, j): a match between rank i of one list and rank j of the
    # other first counts at depth max(i, j) + 1.
    idx = np.arange(width)
    depth_onehot = (np.maximum.outer(idx, idx).reshape(-1)[:, None] == idx[None, :]).astype(
        np.float32
    )
    x = np.empty((n, width))
    for start in range(0, n, _ROW_BLOCK):
        sl = slice(start, start + _ROW_BLOCK)
        eq = _equal_pairs(la[sl], lb[sl]).reshape(-1, width * width).astype(np.float32)
        x[sl] = np.cumsum(eq @ depth_onehot, axis=1)
    len_a = (la >= 0).sum(axis=1)
    len_b = (lb >= 0).sum(axis=1)
    s = np.minimum(len_a, len_b)
    l_ = np.maximum(len_a, len_b)
    d = np.arange(1, width + 1, dtype=np.float64)
    pd = float(p) ** d
    rows = np.arange(n)
    x_s = np.where(s > 0, x[rows, np.maximum(s - 1, 0)], 0.0)
    x_l = np.where(l_ > 0, x[rows, np.maximum(l_ - 1, 0)], 0.0)
    s_f = np.maximum(s, 1).astype(np.float64)
    l_f = np.maximum(l_, 1).astype(np.float64)
    upto_l = d[None, :] <= l_[:, None]
    beyond_s = upto_l & (d[None, :] > s[:, None])
    sum1 = np.where(upto_l, x / d * pd, 0.0).sum(axis=1)
    extra = (d[None, :] - s_f[:, None]) / (s_f[:, None] * d[None, :]) * pd
    sum2 = x_s * np.where(beyond_s, extra, 0.0).sum(axis=1)
    tail = ((x_l - x_s) / l_f + x_s / s_f) * float(p) ** l_f
    value = (1.0 - p) / p * (sum1 + sum2) + tail
    value = np.where(s > 0, value, np.where(l_ > 0, 0.0, 1.0))
    # Float rounding can leave identical lists a hair above 1.
    return np.clip(value, 0.0, 1.0)


def version_change_churn(
    frame: pl.DataFrame,
    tables: Mapping[str, npt.ArrayLike],
    *,
    version: str = "version",
    k: int | None = None,
) -> pl.DataFrame:
    """One row per request where a user's version differs from their previous request's.

    churn = 1 − |A ∩ B| / max(|A|, |B|): the fraction of the list that changed between the
    list A of the previous version and B of the new one (top-K tables, row = user; both
    empty → 0).  Requests are ordered by ``t_s`` within a user.

    ``frame`` needs ``user``, ``t_s`` and ``version``; ``tables`` maps every version name
    in the frame to its int32 [n_users, K] table.  Returns columns
    ``user, t_s, from_version, to_version, churn`` sorted by ``user, t_s``.
    """
    source = "version_change_churn"
    require_columns(source, frame, ("user", "t_s", version))
    ordered = frame.select("user", "t_s", pl.col(version).alias("to_version")).sort("user", "t_s")
    changes = ordered.with_columns(
        pl.col("to_version").shift(1).alias("from_version"),
        (pl.col("user") == pl.col("user").shift(1)).fill_null(False).alias("_same_user"),
    ).filter(pl.col("_same_user") & (pl.col("from_version") != pl.col("to_version")))
    changes = changes.select("user", "t_s", "from_version", "to_version").with_row_index("_row")
    churn = np.full(changes.height, np.nan)
    pairs = changes.select("from_version", "to_version").unique().rows()
    checked: dict[str, ItemArray] = {}
    for old, new in pairs:  # loop over version pairs, not requests
        for name in (old, new):
            if name not in checked:
                if name not in tables:
                    raise must_be(
                        source,
                        "tables",
                        f"a mapping with a table for version {name!r}",
                        sorted(tables),
                    )
                checked[name] = as_lists(source, f"tables[{name!r}]", tables[name])
        ta = truncate(source, checked[old], k)
        tb = truncate(source, checked[new], k)
        sub = changes.filter((pl.col("from_version") == old) & (pl.col("to_version") == new))
        users = sub["user"].to_numpy().astype(np.int64)
        for name, t in ((old, ta), (new, tb)):
            if users.size and (users.min() < 0 or users.max() >= t.shape[0]):
                raise must_be(
                    source, f"tables[{name!r}].shape[0]", "> every user id in the frame", t.shape[0]
                )
        a, b = ta[users], tb[users]
        size = np.maximum((a >= 0).sum(axis=1), (b >= 0).sum(axis=1)).astype(np.float64)
        kept = safe_ratio(_overlap(a, b), size)
        churn[sub["_row"].to_numpy()] = np.where(size > 0, 1.0 - kept, 0.0)
    return changes.drop("_row").with_columns(pl.Series("churn", churn))


def relative_to_noise_floor(
    candidate_jaccard: npt.ArrayLike,
    floor_jaccard: npt.ArrayLike,
    *,
    confidence: float = 0.95,
) -> NoiseFloorComparison:
    """Compare per-user Jaccard(baseline, candidate) with Jaccard(baseline, baseline′).

    baseline′ is the baseline retrained with another seed: its Jaccard is how much lists
    move from training noise alone.  Both arrays are [n_users] over the same users in the
    same order, so the interval is paired: with δ_u = J_cand,u − J_floor,u,
    difference = mean δ ± z · sd(δ) / √n.
    """
    source = "relative_to_noise_floor"
    z = z_value(source, confidence)
    c = as_1d_float(source, "candidate_jaccard", candidate_jaccard)
    f = as_1d_float(source, "floor_jaccard", floor_jaccard)
    same_length(source, ("candidate_jaccard", "floor_jaccard"), c, f)
    for name, arr in (("candidate_jaccard", c), ("floor_jaccard", f)):
        bad = (arr < 0) | (arr > 1)
        if bad.any():
            raise must_be(source, name, "in [0, 1] everywhere", float(arr[bad][0]))
    delta = c - f
    n = delta.shape[0]
    mean_d = float(delta.mean())
    sd = float(delta.std(ddof=1)) if n > 1 else 0.0
    half = z * sd / np.sqrt(n)
    mc, mf = float(c.mean()), float(f.mean())
    ratio = (1.0 - mc) / (1.0 - mf) if mf < 1.0 else float("nan")
    return NoiseFloorComparison(mc, mf, mean_d, mean_d - half, mean_d + half, ratio, n, confidence)
