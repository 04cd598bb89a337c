"""Batch top-K lists for a model version: the table the simulator looks up per request.

Scores are ``user_factors[u] @ item_factors.T`` in float32.  Two ways to find the best K,
with the same result:

* **dense** (catalogues up to ``prune_above`` items, 2,048 by default): every item is
  scored, a block of users at a time so that memory stays bounded whatever the number of
  users (a block holds at most ``chunk_users`` users and at most 4 MiB of scores);
* **pruned** (larger catalogues): items are visited in blocks by decreasing factor norm,
  and a user stops as soon as the Cauchy-Schwarz bound ``|x_u| |y_i|`` of every item left
  falls below their K-th score so far (with a 1e-4 relative margin for float32 rounding).
  Trained factors put most of the norm on few items, so a user typically scores 1-3 % of
  a 100,000-item catalogue (and the first 1,024 items of a 5,000-item one); the cost
  follows what the users need, not the catalogue.

Items the user already consumed are set to ``-inf`` before selection; the top K of each
block come from ``np.argpartition`` (linear time) and only those K are sorted.

Same bits whatever the batch: products are always taken on tiles of 100 users (a short
tile is padded with zero rows) against at least 1,024 items, where OpenBLAS's kernels do
not depend on a row's or column's position (a single row would go through gemv, tiny
products through small-matrix kernels, each rounding differently).  So a user's list never
depends on which other users were scored with it, which is what lets lists be cached and
computed lazily.  implicit's ``recommend`` multiplies the same 100-user tiles against the
whole catalogue, so its scores are bit-identical to these wherever its own tile is full.

Order and ties: descending score, and among exactly equal scores the lower item id first,
including at the K-th place.  implicit's ``recommend`` returns the same items in the same
order whenever scores differ; among exactly equal scores its heap may order (and, at the
K-th place, choose) differently.  Where fewer than K items are left after filtering, the
list is padded with item ``-1`` and score ``-inf`` (implicit instead returns filtered items
with score ``-FLT_MAX`` there).

Users at or beyond ``model.n_users`` (they arrived after the version was trained) get the
model's popularity order (``item_popularity`` as float32 score, same filtering and ties) and
are flagged in ``TopK.unknown``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from replay.errors import must_be
from replay.training import TrainedModel, as_user_items

__all__ = ["TopK", "top_k"]

PAD_ITEM = -1
#: Users per matrix product (implicit's batch size); short tiles are padded to it.
_TILE = 100
#: Scores held at once per thread (dense blocks, pruned steps): small enough to stay in
#: cache between the product and the selection (2,000 items: 4 MiB ran 12 % faster than 16).
_BLOCK_BYTES = 4 * 2**20
#: Catalogues above this size are searched by norm bound (``prune_above``).
PRUNE_ABOVE = 2048
#: Item blocks of the pruned search: the first, and the widest (they double in between).
_FIRST_BLOCK = 1024
_WIDEST_BLOCK = 65536
#: Relative slack on the Cauchy-Schwarz bound: float32 dot products round by ~f * 6e-8.
_BOUND_MARGIN = 1e-4
#: Selection through a shortlist (``_select_shortlisted``): columns per group, and the
#: narrowest row (in multiples of K) worth it; 2 x 8 leaves at least 2K groups.  Groups of
#: 8 (a shortlist of 8K columns) selected all 50,000 users of a 5,000-item ALS in 25 % less
#: CPU than groups of 16.
_GROUP = 8
_SHORTLIST_FROM = 2 * _GROUP


@dataclass(frozen=True, slots=True, eq=False)
class TopK:
    """Top-K lists, one row per requested user, in the order the users were given.

    items    int32   [n, k]  item ids, best first, ``-1`` where fewer than k remain
    scores   float32 [n, k]  model scores (popularity counts for unknown users), ``-inf`` pads
    unknown  bool    [n]     user beyond the model's shape: served the popularity order

    Unpacks like a pair: ``items, scores = top_k(...)``.
    """

    items: npt.NDArray[np.int32]
    scores: npt.NDArray[np.float32]
    unknown: npt.NDArray[np.bool_]

    @property
    def n_unknown(self) -> int:
        return int(np.count_nonzero(self.unknown))

    def __iter__(self) -> Iterator[npt.NDArray[Any]]:
        return iter((self.items, self.scores))


def top_k(
    model: TrainedModel,
    users: npt.ArrayLike,
    user_items: sp.csr_matrix,
    k: int,
    *,
    filter_consumed: bool = True,
    chunk_users: int = 4096,
    prune_above: int = PRUNE_ABOVE,
    threads: int = 1,
) -> TopK:
    """Top ``k`` items for each of ``users`` under ``model``.

    users        int ids >= 0, any order, repeats allowed
    user_items   users x items interactions, indexed by user id (the full matrix, not one
                 row per requested user); users beyond its rows have consumed nothing and
                 items beyond the model's catalogue are ignored
    chunk_users  dense search: at most this many users scored per block; blocks are also
                 capped at 4 MiB of scores and rounded down to whole 100-user tiles
    prune_above  catalogues with more items are searched by norm bound (same result)
    threads      score this many shares of the users at once (BLAS and the selection release
                 the GIL); rows do not depend on their batch, so neither does the result
    """
    source = "top_k"
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise must_be(source, "k", "an integer >= 1", k)
    if (
        isinstance(chunk_users, bool)
        or not isinstance(chunk_users, int | np.integer)
        or chunk_users < 1
    ):
        raise must_be(source, "chunk_users", "an integer >= 1", chunk_users)
    ids = np.asarray(users)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise must_be(
            source, "users", "a 1-D array of integer user ids", f"{ids.dtype} {ids.shape}"
        )
    if ids.size and int(ids.min()) < 0:
        raise must_be(source, "users", "ids >= 0", int(ids.min()))
    ids = ids.astype(np.int64, copy=False)
    consumed = as_user_items(user_items, source) if filter_consumed else None

    k = int(k)
    items_out = np.full((ids.size, k), PAD_ITEM, dtype=np.int32)
    scores_out = np.full((ids.size, k), -np.inf, dtype=np.float32)
    unknown = ids >= model.n_users
    # Each distinct user once: rows do not depend on their batch, so repeats can share one.
    distinct, row_of = np.unique(ids, return_inverse=True)
    novel = distinct >= model.n_users
    found_items = np.full((distinct.size, k), PAD_ITEM, dtype=np.int32)
    found_scores = np.full((distinct.size, k), -np.inf, dtype=np.float32)
    # A user whose factors are all zero scores every item exactly 0: the lowest ids win.
    blank = ~novel
    blank[blank] = ~model.user_factors[distinct[blank]].any(axis=1)
    known = np.flatnonzero(~novel & ~blank)
    if known.size:

        def search(part: npt.NDArray[np.int64]) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
            # Memory: the dense search holds chunk_users x n_items scores, the pruned one a
            # 100-user tile against its widest block (per thread).
            if model.n_items > prune_above:
                return _pruned(model, part, consumed, k)
            return _dense(model, part, consumed, k, chunk_users)

        found_items[known], found_scores[known] = _in_shares(search, distinct[known], threads)
    for rows, scores in ((np.flatnonzero(novel), None), (np.flatnonzero(blank), 0.0)):
        if rows.size:
            found_items[rows], found_scores[rows] = _in_order(
                model, distinct[rows], consumed, k, constant=scores
            )
    items_out[:] = found_items[row_of]
    scores_out[:] = found_scores[row_of]
    return TopK(items_out, scores_out, unknown)


def _in_shares(
    search: Callable[[npt.NDArray[np.int64]], tuple[npt.NDArray[Any], npt.NDArray[Any]]],
    users: npt.NDArray[np.int64],
    threads: int,
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """``search(users)``, cut into ``threads`` shares of whole tiles searched at once."""
    per_share = -(-users.size // max(1, threads) // _TILE) * _TILE
    if threads <= 1 or users.size < 2 * _TILE * 10:
        return search(users)
    shares = [users[i : i + per_share] for i in range(0, users.size, per_share)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        found = list(pool.map(search, shares))
    return (
        np.concatenate([items for items, _ in found]),
        np.concatenate([scores for _, scores in found]),
    )


def _score_tiles(
    user_factors: npt.NDArray[np.float32],
    users: npt.NDArray[np.int64],
    items_t: npt.NDArray[np.float32],
) -> npt.NDArray[np.float32]:
    """``user_factors[users] @ items_t`` on 100-row tiles, a short tile padded with zeros.

    Same bits for a row whatever tile it falls in (module doc).
    """
    scores = np.empty((users.size, items_t.shape[1]), dtype=np.float32)
    for start in range(0, users.size, _TILE):
        rows = users[start : start + _TILE]
        if rows.size == _TILE:
            np.matmul(user_factors[rows], items_t, out=scores[start : start + _TILE])
            continue
        padded = np.zeros((_TILE, user_factors.shape[1]), dtype=np.float32)
        padded[: rows.size] = user_factors[rows]
        scores[start : start + rows.size] = (padded @ items_t)[: rows.size]
    return scores


class _Consumed:
    """Each requested user's consumed items, as a CSR over the requested users."""

    def __init__(self, consumed: sp.csr_matrix | None, users: npt.NDArray[np.int64], n_items: int):
        if consumed is None:
            self.ptr = np.zeros(users.size + 1, np.int64)
            self.items = np.zeros(0, np.int64)
            return
        inside = users < consumed.shape[0]
        rows = np.where(inside, users, 0)
        starts = np.where(inside, consumed.indptr[rows], 0).astype(np.int64)
        lengths = np.where(inside, consumed.indptr[rows + 1] - consumed.indptr[rows], 0)
        total = int(lengths.sum())
        # Gather every consumed (row, item) pair without a Python loop per user.
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(total)
        items = consumed.indices[offsets].astype(np.int64)
        owner = np.repeat(np.arange(users.size), lengths)
        keep = items < n_items  # items beyond the model's catalogue are ignored
        self.items = items[keep]
        self.ptr = np.concatenate([[0], np.cumsum(np.bincount(owner[keep], minlength=users.size))])

    def pairs(
        self, rows: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(position in ``rows``, item) for every consumed item of those requested users."""
        starts = self.ptr[rows]
        lengths = self.ptr[rows + 1] - starts
        total = int(lengths.sum())
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(total)
        return np.repeat(np.arange(rows.size), lengths), self.items[offsets]


def _dense(
    model: TrainedModel,
    users: npt.NDArray[np.int64],
    consumed: sp.csr_matrix | None,
    k: int,
    chunk_users: int,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    """Every item scored, ``chunk`` users at a time."""
    # Rows per block: at most chunk_users, and few enough that the float32 score block stays
    # within _BLOCK_BYTES (it is written by the product and read back by the selection, which
    # is much faster while it stays in cache: 400 x 10k items ran ~1.8x faster than 4096 x
    # 10k); whole tiles.
    by_memory = _BLOCK_BYTES // (4 * max(1, model.n_items))
    chunk = max(_TILE, min(int(chunk_users), by_memory) // _TILE * _TILE)
    lists = _Consumed(consumed, users, model.n_items)
    items_t = model.item_factors.T
    items_out = np.empty((users.size, k), dtype=np.int32)
    scores_out = np.empty((users.size, k), dtype=np.float32)
    for start in range(0, users.size, chunk):
        block = np.arange(start, min(start + chunk, users.size))
        scores = _score_tiles(model.user_factors, users[block], items_t)
        rows, items = lists.pairs(block)
        scores[rows, items] = -np.inf
        best, best_scores = _select(scores, None, k)
        items_out[block] = _as_items(best, best_scores)
        scores_out[block] = best_scores
    return items_out, scores_out


def _block_edges(n_items: int) -> list[tuple[int, int]]:
    """Item blocks of the pruned search: 1,024 wide, doubling to 65,536, none narrower."""
    edges = [0]
    width = _FIRST_BLOCK
    while edges[-1] < n_items:
        edges.append(min(edges[-1] + width, n_items))
        width = min(2 * width, _WIDEST_BLOCK)
    if len(edges) > 2 and edges[-1] - edges[-2] < _FIRST_BLOCK:
        del edges[-2]  # a narrow last block joins the one before it
    return list(itertools.pairwise(edges))


def _pruned(
    model: TrainedModel, users: npt.NDArray[np.int64], consumed: sp.csr_matrix | None, k: int
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    """Items by decreasing norm, each user until no item left can beat their K-th score."""
    factors = model.item_factors
    norms = np.sqrt(np.einsum("if,if->i", factors, factors, dtype=np.float64))
    order = np.argsort(-norms, kind="stable")
    position = np.empty(order.size, np.int64)
    position[order] = np.arange(order.size)
    by_norm = np.ascontiguousarray(factors[order])
    sorted_norms = norms[order]
    user_rows = model.user_factors[users]
    user_norms = np.sqrt(np.einsum("uf,uf->u", user_rows, user_rows, dtype=np.float64))
    lists = _Consumed(consumed, users, model.n_items)
    best = np.full((users.size, k), order.size, dtype=np.int64)  # id past the catalogue
    best_scores = np.full((users.size, k), -np.inf, dtype=np.float32)
    active = np.arange(users.size)
    for lo, hi in _block_edges(order.size):
        reach = user_norms[active] * sorted_norms[lo] * (1.0 + _BOUND_MARGIN)
        active = active[~(reach < best_scores[active, k - 1])]
        if active.size == 0:
            break
        block_t = by_norm[lo:hi].T
        ids = order[lo:hi]
        # Several tiles per step (same bits: rows never depend on their batch), so the
        # selection's fixed cost per call is paid per step, not per 100 users.
        step = max(_TILE, _BLOCK_BYTES // (4 * (hi - lo)) // _TILE * _TILE)
        for start in range(0, active.size, step):
            rows = active[start : start + step]
            scores = _score_tiles(model.user_factors, users[rows], block_t)
            at, items = lists.pairs(rows)
            inside = (position[items] >= lo) & (position[items] < hi)
            scores[at[inside], position[items[inside]] - lo] = -np.inf
            top, top_scores = _select(scores, ids, k)
            if lo == 0:
                # Nothing found yet (ids past the catalogue at -inf): the merge would return
                # ``top`` itself, whose pads are real ids below the catalogue's size.
                best[rows], best_scores[rows] = top, top_scores
                continue
            merged, merged_scores = _select(
                np.concatenate([best_scores[rows], top_scores], axis=1),
                np.concatenate([best[rows], top], axis=1),
                k,
            )
            best[rows], best_scores[rows] = merged, merged_scores
    return _as_items(best, best_scores), best_scores


def _in_order(
    model: TrainedModel,
    users: npt.NDArray[np.int64],
    consumed: sp.csr_matrix | None,
    k: int,
    *,
    constant: float | None,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    """One order for every user, without each user's consumed items.

    ``constant`` None: the popularity order (users the model lacks), scored by popularity;
    a number: item id order, every score that number (users with all-zero factors).
    """
    n_items = model.n_items
    popularity = (
        model.item_popularity.astype(np.float32)
        if constant is None
        else np.full(n_items, constant, dtype=np.float32)
    )
    order = np.lexsort((np.arange(n_items), -popularity))
    rank = np.empty(n_items, np.int64)
    rank[order] = np.arange(n_items)
    lists = _Consumed(consumed, users, n_items)
    width = min(n_items, k + int(np.diff(lists.ptr).max(initial=0)))
    # The best k left lie within the first k + (consumed count) of the order.
    taken = np.zeros((users.size, width), dtype=bool)
    at, items = lists.pairs(np.arange(users.size))
    near = rank[items] < width
    taken[at[near], rank[items[near]]] = True
    first = np.argsort(taken, axis=1, kind="stable")[:, :k]
    chosen = order[:width][first]
    valid = ~np.take_along_axis(taken, first, axis=1)
    items_out = np.full((users.size, k), PAD_ITEM, dtype=np.int32)
    scores_out = np.full((users.size, k), -np.inf, dtype=np.float32)
    kk = min(k, width)
    items_out[:, :kk] = np.where(valid, chosen, PAD_ITEM)
    scores_out[:, :kk] = np.where(valid, popularity[chosen], -np.inf)
    return items_out, scores_out


def _as_items(
    best: npt.NDArray[np.int64], scores: npt.NDArray[np.float32]
) -> npt.NDArray[np.int32]:
    return np.where(np.isfinite(scores), best, PAD_ITEM).astype(np.int32)


def _select(
    scores: npt.NDArray[np.float32], ids: npt.NDArray[np.int64] | None, k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Top ``k`` per row by descending score, ties to the lower id; ``-inf`` pads past the end.

    ids  the id of each column: None (the column index), 1-D shared by all rows, or 2-D.
    """
    if scores.shape[1] >= _SHORTLIST_FROM * k and scores.shape[0]:
        return _select_shortlisted(scores, ids, k)
    return _select_partitioned(scores, ids, k)


def _select_partitioned(
    scores: npt.NDArray[np.float32], ids: npt.NDArray[np.int64] | None, k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """:func:`_select` by partitioning every row at its K-th score."""
    n_rows, width = scores.shape
    kk = min(k, width)
    if kk < width:
        # The kk largest sit at the end after partitioning at width - kk.
        top = np.argpartition(scores, width - kk, axis=1)[:, width - kk :]
    else:
        top = np.broadcast_to(np.arange(width), (n_rows, width)).copy()
    top_scores = np.take_along_axis(scores, top, axis=1)
    if kk < width:
        _settle_boundary_ties(scores, ids, top, top_scores)
    top_ids = _ids_of(ids, top)
    order = np.lexsort((top_ids, -top_scores), axis=1)
    out = np.full((n_rows, k), np.iinfo(np.int64).max, dtype=np.int64)
    out_scores = np.full((n_rows, k), -np.inf, dtype=np.float32)
    out[:, :kk] = np.take_along_axis(top_ids, order, axis=1)
    out_scores[:, :kk] = np.take_along_axis(top_scores, order, axis=1)
    return out, out_scores


def _select_shortlisted(
    scores: npt.NDArray[np.float32], ids: npt.NDArray[np.int64] | None, k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """:func:`_select` of wide rows through a shortlist: the same pairs, bit for bit.

    The first ``_GROUP x G`` columns fall into G groups (column ``c + j G`` in group ``c``,
    so a group's maximum is an element-wise maximum of ``_GROUP`` contiguous slices).  Each
    of the row's K best scores lies in a group whose maximum is at least the K-th best
    score, which is at least the K-th largest group maximum ``t``; when exactly K groups
    reach ``t``, those K groups and the last ``width - _GROUP x G`` columns hold the K best
    *and* every column tied with the K-th, so selecting among them (``_GROUP x K`` columns)
    gives what the whole row gives, where partitioning the whole row cost most of the scoring.
    Rows with more than K groups at ``t`` (tied maxima, ``-inf`` or NaN) take the full
    selection.
    """
    n_rows, width = scores.shape
    groups = width // _GROUP
    covered = groups * _GROUP
    maxima = scores[:, :covered].reshape(n_rows, _GROUP, groups).max(axis=1)
    best_groups = np.argpartition(maxima, groups - k, axis=1)[:, groups - k :]
    bound = np.take_along_axis(maxima, best_groups, axis=1).min(axis=1)
    clear = np.count_nonzero(maxima >= bound[:, None], axis=1) == k
    rows = np.flatnonzero(clear)
    columns = best_groups[rows, :, None] + groups * np.arange(_GROUP)
    columns = columns.reshape(rows.size, k * _GROUP)
    if covered < width:
        tail = np.broadcast_to(np.arange(covered, width), (rows.size, width - covered))
        columns = np.concatenate([columns, tail], axis=1)
    shortlist = scores[rows[:, None], columns]
    shortlist_ids = (
        columns.astype(np.int64)
        if ids is None
        else ids[columns]
        if ids.ndim == 1
        else ids[rows[:, None], columns]
    )
    out = np.empty((n_rows, k), dtype=np.int64)
    out_scores = np.empty((n_rows, k), dtype=np.float32)
    out[rows], out_scores[rows] = _select_partitioned(shortlist, shortlist_ids, k)
    if rows.size < n_rows:
        rest = np.flatnonzero(~clear)
        rest_ids = ids if ids is None or ids.ndim == 1 else ids[rest]
        out[rest], out_scores[rest] = _select_partitioned(scores[rest], rest_ids, k)
    return out, out_scores


def _ids_of(
    ids: npt.NDArray[np.int64] | None, columns: npt.NDArray[np.intp]
) -> npt.NDArray[np.int64]:
    if ids is None:
        return columns.astype(np.int64)
    if ids.ndim == 1:
        return ids[columns]
    return np.take_along_axis(ids, columns, axis=1)


def _settle_boundary_ties(
    scores: npt.NDArray[np.float32],
    ids: npt.NDArray[np.int64] | None,
    top: npt.NDArray[np.intp],
    top_scores: npt.NDArray[np.float32],
) -> None:
    """Where the K-th score is tied with unselected columns, keep the lowest ids (in place).

    ``argpartition`` picks arbitrarily among columns equal to the K-th score; rows where
    that matters are rare (exactly equal float scores), so they are fixed one by one.  Ties
    at ``-inf`` (consumed items) are padding and never matter.
    """
    kk = top.shape[1]
    kth = top_scores.min(axis=1)
    ambiguous = np.isfinite(kth) & (np.count_nonzero(scores >= kth[:, None], axis=1) > kk)
    for row in np.flatnonzero(ambiguous):
        threshold = kth[row]
        above = np.flatnonzero(scores[row] > threshold)
        tied = np.flatnonzero(scores[row] == threshold)
        tied_ids = _ids_of(ids if ids is None or ids.ndim == 1 else ids[row], tied)
        wanted = kk - above.size
        lowest = np.argpartition(tied_ids, wanted - 1)[:wanted] if wanted < tied.size else None
        tied = tied if lowest is None else tied[lowest]
        chosen = np.concatenate([above, tied])
        top[row] = chosen
        top_scores[row] = scores[row, chosen]
