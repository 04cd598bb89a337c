"""Replayed users folded into a version from what they did before they are replayed.

A version decides each user's list once, before the replay (``lab.versions``).  Split by
time alone, most users of a replayed log arrive after the training window: MovieLens
latest-small leaves 18 of the replay's 165 users with any earlier interaction, so the
other 147 get the one popularity list, and every list-level number (hit@K, the calibration
slope) rests on a handful of users.  A service does not serve a returning user that way:
it folds the user's interactions into the model as they come.  Two steps do that here,
both causal (nothing a user did later, nor anything any other user did after the training
window, reaches their list):

**Warm-up** (:func:`warm_up_rows`).  The first of each user's events in a window are taken
as history instead of replayed: enough for ``warm_up`` interactions in all (counted from the
start of the training window), and at least a ``fraction`` of the user's events in the
window, but never the user's last event there: everyone active in the window is replayed.
Those rows are counted (``data.fold_in.warm_up_events``), never dropped silently;
the user's remaining events are replayed as usual, their truth (what they consumed next)
unchanged.  Why a fraction as well as a count: a version serves one list per user, a
snapshot of their history at their first replayed event, while a service would refresh it
as they act.  After a fixed count of 10, a user who rates 2,000 films in the window is
served for all of them from 10; starting the replay after a fraction f of the user's events
bounds how far behind the snapshot falls to a factor 1/f of the history it stands for.

**Fold-in** (:func:`fold_in`).  For every user whose history before their first replayed
event (:func:`history_before`) holds interactions a version did not learn from, the
version's user factors are re-solved from that history with the version's own item
factors, exactly as ALS solves a user in training (implicit's ``recalculate_user``,
weighted least squares with confidence ``alpha · w``):

    x_u = (Yᵀ C_u Y + λ I)⁻¹ Yᵀ C_u p_u

Item factors stay the version's: retraining on the replay window's early events would put
other users' later interactions into the items a replayed request is scored with.  Only
ALS has a closed-form user solve; other algorithms are returned unchanged.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from replay.errors import must_be
from replay.events import interaction_matrix
from replay.sessions import user_time_order
from replay.training import TrainedModel, to_implicit
from replay.windows import Window

__all__ = ["fold_in", "history_before", "warm_up_rows"]


def _window_slice(events: pl.DataFrame, window: Window) -> tuple[int, int]:
    """Row bounds of ``window`` in the time-sorted ``events`` (as ``replay_requests`` cuts)."""
    ts = events["ts"]
    lo = int(ts.search_sorted(window.start, side="left"))
    hi = int(ts.search_sorted(window.end, side="left"))
    return lo, max(lo, hi)


def warm_up_rows(
    events: pl.DataFrame,
    window: Window,
    *,
    since: datetime,
    warm_up: int,
    n_users: int,
    fraction: float = 0.0,
) -> npt.NDArray[np.bool_]:
    """bool [rows of ``window``]: the events taken as their user's history, not replayed.

    Row j of user u (the r-th of u's n_u events in the window, r = 0, 1, ... in time order)
    is a warm-up row iff ``r < min(max(warm_up − prior_u, ⌈fraction · n_u⌉), n_u − 1)``,
    ``prior_u`` the user's events in ``[since, window.start)``: the last event of every user
    is replayed.  ``events`` sorted by time (the canonical
    order).
    """
    if not (isinstance(warm_up, int) and not isinstance(warm_up, bool) and warm_up >= 0):
        raise must_be("warm_up_rows", "warm_up", "an integer >= 0", warm_up)
    if not (isinstance(fraction, int | float) and 0.0 <= fraction < 1.0):
        raise must_be("warm_up_rows", "fraction", "a number in [0, 1)", fraction)
    lo, hi = _window_slice(events, window)
    start = int(events["ts"].search_sorted(since, side="left"))
    prior = np.bincount(
        events["user"].slice(start, max(0, lo - start)).to_numpy().astype(np.int64),
        minlength=n_users,
    )
    user = events["user"].slice(lo, hi - lo).to_numpy()
    if user.size == 0 or (warm_up == 0 and fraction == 0.0):
        return np.zeros(user.size, dtype=bool)
    order = user_time_order(user)
    grouped = user[order]
    first = np.ones(grouped.size, dtype=bool)
    first[1:] = grouped[1:] != grouped[:-1]
    starts = np.flatnonzero(first)
    rank_grouped = np.arange(grouped.size) - np.repeat(
        starts, np.diff(np.append(starts, grouped.size))
    )
    rank = np.empty(user.size, dtype=np.int64)
    rank[order] = rank_grouped
    per_user = np.bincount(user.astype(np.int64), minlength=n_users)
    wanted = np.maximum(warm_up - prior, np.ceil(fraction * per_user).astype(np.int64))
    taken = np.minimum(wanted, per_user - 1)
    return np.asarray(rank < taken[user.astype(np.int64)])


def history_before(
    events: pl.DataFrame,
    window: Window,
    warm_up: npt.NDArray[np.bool_],
    *,
    since: datetime,
    n_users: int,
    n_items: int,
) -> sp.csr_matrix:
    """Users x items weights of everything before each user's first replayed event of
    ``window``: the events in ``[since, window.start)`` plus the window's ``warm_up`` rows."""
    lo, hi = _window_slice(events, window)
    if warm_up.shape != (hi - lo,):
        raise must_be(
            "history_before", "warm_up.shape", f"({hi - lo},) like the window", warm_up.shape
        )
    earlier = interaction_matrix(events, n_users, n_items, since, window.start)
    taken = events.slice(lo, hi - lo).filter(pl.Series(warm_up))
    if taken.height == 0:
        return earlier
    return sp.csr_matrix(earlier + interaction_matrix(taken, n_users, n_items), dtype=np.float32)


def fold_in(
    model: TrainedModel, seen: sp.csr_matrix, history: sp.csr_matrix, *, threads: int = 1
) -> tuple[TrainedModel, sp.csr_matrix, int]:
    """``(model, seen, folded)``: ``model`` with the factors of every user whose ``history``
    row holds more interactions than their ``seen`` row re-solved from ``history`` (module
    docstring), ``seen`` with those rows taken from ``history`` (what the version now knows
    of them), and how many users were folded in.

    Shapes: ``seen`` and ``history`` [n_users, n_items] like the model's users x items; only
    ALS versions are folded (others come back unchanged, ``folded = 0``).
    """
    if model.algorithm != "als":
        return model, seen, 0
    if history.shape != (model.n_users, model.n_items) or seen.shape != history.shape:
        raise must_be(
            "fold_in",
            "history.shape",
            f"the model's users x items {(model.n_users, model.n_items)} like seen {seen.shape}",
            history.shape,
        )
    history = sp.csr_matrix(history, dtype=np.float32)
    grown = np.flatnonzero(history.getnnz(axis=1) > seen.getnnz(axis=1))
    if grown.size == 0:
        return model, seen, 0
    with threadpool_limits(1, "blas"):
        solver = to_implicit(model)
        solver.num_threads = max(1, int(threads))
        solved = np.asarray(solver.recalculate_user(grown, history[grown]), dtype=np.float32)
    users = np.array(model.user_factors, dtype=np.float32)
    users[grown] = solved
    folded = TrainedModel(
        model.spec,
        users,
        np.asarray(model.item_factors),
        np.asarray(model.item_popularity),
        model.training_seconds,
    )
    take = np.zeros(model.n_users, dtype=np.float32)
    take[grown] = 1.0
    knows = sp.diags(take) @ history + sp.diags(1.0 - take) @ sp.csr_matrix(seen, dtype=np.float32)
    return folded, sp.csr_matrix(knows, dtype=np.float32), int(grown.size)
