"""What each request showed, and whether it held the item its user consumed next (hit@K).

hit@K (DESIGN.md section 4) is the share of requests whose shown list contains an item the
user really consumed next.  Two sources of "next":

* **replayed logs** (``observed``): the items the user consumed in the log after the request
  (``RequestStream.truth_*``); the request frame's ``hit`` column holds the list-level answer
  (-1: the user consumed nothing more, so the request cannot be judged);
* **synthetic worlds** (``expected``): the item the user would consume next on their own,
  drawn from the live world's truth, P(i | u) = exp(a(u, i)) / Σ_j exp(a(u, j)) over the
  whole catalogue — the same law the drift probe samples organic consumption from.  The
  list's hit probability is then Σ_{i ∈ list} P(i | u), computed instead of sampled (the
  normaliser exactly up to 8,192 items, estimated within about 1 % beyond), so every
  request is judged and hit@K is an expected share.

Per slot, ``hit_slots`` holds 1/0 (observed) or P(i | u) (expected): the popularity buckets
split a list's hits by the bucket of the item that made them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from lab.artifacts import partition_key
from lab.pipeline import RunResult
from replay.artifact_store import Artifact
from replay.sampling import log_partition
from replay.synthetic import SyntheticWorld

__all__ = [
    "Exposure",
    "HitMethod",
    "consumed_next",
    "exposure",
    "next_item_probability",
    "shown_lists",
]

HitMethod = Literal["observed", "expected"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ItemArray = npt.NDArray[np.int32]

OBSERVED_BASIS = (
    "replayed log: the shown list contains an item the user consumed next in the log "
    "(requests whose user consumed nothing more are not judged)"
)
EXPECTED_BASIS = (
    "synthetic truth: probability that the item the user would consume next on their own, "
    "P(i) proportional to exp(true affinity) over the catalogue, is in the shown list "
    "(expected share, every request judged)"
)
# Lists per block when gathering item factors: bounds the [block, K, f] temporary.
_REQUEST_BLOCK = 1 << 16


@dataclass(frozen=True, slots=True)
class Exposure:
    """Per request: the list shown and its hits.

    items      int32   [n, K]  the list shown (-1: empty slot; a whole row when nothing shown)
    hit        float64 [n]     hit@K of the request: 0/1 (observed) or a probability
                               (expected); NaN where the request cannot be judged
    hit_slots  float64 [n, K]  per slot: 1/0 (observed) or P(next item = this one) (expected)
    """

    items: ItemArray
    hit: FloatArray | None
    hit_slots: FloatArray | None
    method: HitMethod | None
    basis: str | None


def shown_lists(
    user: npt.ArrayLike,
    served_by: npt.ArrayLike,
    tables: Sequence[npt.ArrayLike],
    popular: npt.ArrayLike,
) -> ItemArray:
    """The list each request showed: row ``user`` of ``tables[served_by]``.

    ``served_by`` codes: a table index, -1 the ``popular`` list [K], -2 nothing shown (a
    row of -1).  Shapes: ``user``, ``served_by`` [n]; ``tables`` int32 [n_users, K] each.
    """
    u = np.asarray(user, dtype=np.int64)
    code = np.asarray(served_by, dtype=np.int64)
    pop = np.asarray(popular, dtype=np.int32)
    out = np.full((u.shape[0], pop.shape[0]), -1, np.int32)
    for v, table in enumerate(tables):  # loop over versions, not requests
        rows = np.flatnonzero(code == v)
        out[rows] = np.asarray(table, dtype=np.int32)[u[rows]]
    out[code == -1] = pop
    return out


def next_item_probability(
    world: SyntheticWorld,
    users: npt.ArrayLike,
    items: npt.ArrayLike,
    *,
    normalisers: Callable[[IntArray], FloatArray] | None = None,
) -> FloatArray:
    """P(i | u) = exp(a(u, i)) / Σ_j exp(a(u, j)) for ``items [n, K]`` of ``users [n]``.

    a(u, i) is the world's true affinity (``SyntheticWorld.affinity``); the normaliser runs
    over the whole catalogue per distinct user up to 8,192 items, and beyond that is the
    stratified estimate of ``replay.sampling.log_partition`` (exact over the 2,048 most
    popular items, one item per stratum of the rest), so its cost does not grow with the
    catalogue.  0 on empty slots (-1).  ``normalisers(distinct_users)``: where ln Z comes
    from (default: computed here; a run's report reads it from the artifact store).
    """
    row_users = np.asarray(users, dtype=np.int64)
    row_lists = np.asarray(items, dtype=np.int32)
    distinct, user_of_row = np.unique(row_users, return_inverse=True)
    log_z = (normalisers or (lambda ids: log_partition(world, ids)))(distinct)
    p = np.empty(row_lists.shape)
    for start in range(0, row_users.shape[0], _REQUEST_BLOCK):
        sl = slice(start, start + _REQUEST_BLOCK)
        affinity = world.affinity(row_users[sl], row_lists[sl]).astype(np.float64)
        p[sl] = np.exp(affinity - log_z[user_of_row[sl]][:, None])  # exp(-inf) = 0: empty slot
    return p


def consumed_next(
    items: npt.ArrayLike, truth_ptr: npt.ArrayLike, truth_items: npt.ArrayLike, n_items: int
) -> npt.NDArray[np.bool_]:
    """Per slot: is ``items[r, k]`` among the items request r's user consumed next?

    CSR truth as in ``RequestStream``: request r's items are
    ``truth_items[truth_ptr[r]:truth_ptr[r + 1]]``.  One sorted key per (request, item) pair
    and a binary search per slot.  Shapes: ``items`` [n, K], ``truth_ptr`` [n + 1].
    """
    lists = np.asarray(items, dtype=np.int64)
    ptr = np.asarray(truth_ptr, dtype=np.int64)
    truth = np.asarray(truth_items, dtype=np.int64)
    n = lists.shape[0]
    if truth.shape[0] == 0 or n == 0:
        return np.zeros(lists.shape, np.bool_)
    owner = np.repeat(np.arange(n, dtype=np.int64), np.diff(ptr))
    keys = np.sort(owner * n_items + truth[ptr[0] : ptr[-1]])
    probe = np.arange(n, dtype=np.int64)[:, None] * n_items + np.maximum(lists, 0)
    at = np.minimum(np.searchsorted(keys, probe), keys.shape[0] - 1)
    member: npt.NDArray[np.bool_] = (keys[at] == probe) & (lists >= 0)
    return member


def _stored_normalisers(
    result: RunResult, live: SyntheticWorld
) -> Callable[[IntArray], FloatArray] | None:
    """ln Z_u through the run's artifact store: a pure function of the world and the users
    (``partition_key``), and the report's costliest part of a rerun (a few seconds at
    50,000 users).  None without a store."""
    builder = result.prepared.builder
    if builder is None or builder.store is None:
        return None
    store, world = builder.store, result.prepared.source.data_key("all")

    def read(users: IntArray) -> FloatArray:
        def build() -> Artifact:
            return Artifact({"log_z": log_partition(live, users)})

        key = partition_key(world, users, builder.code)
        return np.asarray(store.fetch("partition", key, build).arrays["log_z"], np.float64)

    return read


def exposure(
    result: RunResult, user: IntArray, served_by: IntArray, hit: npt.ArrayLike | None
) -> Exposure:
    """The shown lists of every request of ``result`` and their hits (see module docstring).

    ``user``/``served_by`` are the request columns as codes (``reports.quality``);
    ``hit`` the frame's ``hit`` column (int, -1 without truth) or None.
    """
    prepared = result.prepared
    items = shown_lists(user, served_by, [t.items for t in result.versions], prepared.popular.items)
    live = prepared.source.live_world
    if live is not None:
        # A request's list is fixed by (served_by, user): score each such pair once.
        key = (np.asarray(served_by, dtype=np.int64) + 2) * prepared.world.n_users + user
        _, first, row_of = np.unique(key, return_index=True, return_inverse=True)
        normalisers = _stored_normalisers(result, live)
        slots = next_item_probability(live, user[first], items[first], normalisers=normalisers)
        slots = slots[row_of.ravel()]
        return Exposure(items, slots.sum(axis=1), slots, "expected", EXPECTED_BASIS)
    stream = result.stream
    column = None if hit is None else np.asarray(hit, dtype=np.int64)
    if column is None or not stream.has_truth or not (column >= 0).any():
        return Exposure(items, None, None, None, None)
    member = consumed_next(items, stream.truth_ptr, stream.truth_items, prepared.world.n_items)
    judged = np.where(column >= 0, column.astype(np.float64), np.nan)
    return Exposure(items, judged, member.astype(np.float64), "observed", OBSERVED_BASIS)
