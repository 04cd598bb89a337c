"""The canonical event table every reader and the synthetic generator produce.

One row per interaction, columns (polars dtypes):

    user     UInt32            dense user index, 0..n_users-1
    item     UInt32            dense item index, 0..n_items-1
    ts       Datetime(us, UTC) when it happened
    event    String            event type ("rating", "view", "click", ...)
    weight   Float32           interaction strength (rating, count, dwell), finite and >= 0
    session  UInt32            session index (dense, in order of first event)

Rows are sorted by ``(ts, user, item)``.  The mapping from dense indices back to the raw ids
of the source lives beside the table (``EventTable.user_ids`` / ``item_ids``), so the dense
ids stay small and contiguous for the sparse matrices that training needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl
import scipy.sparse as sp

__all__ = ["EVENT_SCHEMA", "EventTable", "interaction_matrix"]

EVENT_SCHEMA: dict[str, pl.DataType] = {
    "user": pl.UInt32(),
    "item": pl.UInt32(),
    "ts": pl.Datetime("us", "UTC"),
    "event": pl.String(),
    "weight": pl.Float32(),
    "session": pl.UInt32(),
}


@dataclass(frozen=True, slots=True)
class EventTable:
    """Events plus the way back to raw ids and the row accounting of how they were read.

    ``accounting`` maps ``"input_rows"``, ``"kept"`` and ``"skipped.<reason>"`` to counts;
    ``kept + sum(skipped) == input_rows`` always holds.
    """

    events: pl.DataFrame
    user_ids: pl.Series
    item_ids: pl.Series
    source: str = "synthetic"
    accounting: dict[str, int] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return self.user_ids.len()

    @property
    def n_items(self) -> int:
        return self.item_ids.len()


def interaction_matrix(
    events: pl.DataFrame,
    n_users: int,
    n_items: int,
    start: datetime | None = None,
    end: datetime | None = None,
) -> sp.csr_matrix:
    """Users x items CSR of summed weights for events with ``start <= ts < end``.

    implicit wants ``scipy.sparse.csr_matrix`` (not ``csr_array``) shaped users x items;
    passing items x users silently trains a transposed model, so the shape is fixed here.
    """
    frame = events
    if start is not None:
        frame = frame.filter(pl.col("ts") >= start)
    if end is not None:
        frame = frame.filter(pl.col("ts") < end)
    users = frame["user"].to_numpy().astype(np.int64, copy=False)
    items = frame["item"].to_numpy().astype(np.int64, copy=False)
    weights = frame["weight"].to_numpy().astype(np.float32, copy=False)
    matrix = sp.coo_matrix((weights, (users, items)), shape=(n_users, n_items)).tocsr()
    matrix.sum_duplicates()
    return sp.csr_matrix(matrix, dtype=np.float32)
