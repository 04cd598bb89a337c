"""Sessions: a user's events split by inactivity gaps, or taken from a logged session column.

Session indices are dense (0..n_sessions-1) and numbered in the order in which sessions
start, i.e. in the order of their first row in the canonical ``(ts, user, item)`` sort.
A new session starts at a user's first event and whenever the time since that user's
previous event is strictly greater than the gap; so inside a session consecutive events
are at most ``gap_s`` apart, and consecutive sessions of one user are more than ``gap_s``
apart.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl

from replay.errors import InternalError

__all__ = ["gap_sessions", "keyed_sessions", "session_starts", "sessionize", "user_time_order"]


def _user_sort_key(user: npt.NDArray[np.uint32]) -> tuple[npt.NDArray[np.uint64], int] | None:
    """``(user << pos_bits | position)`` sorted, and ``pos_bits``; None if it does not fit."""
    n = int(user.shape[0])
    pos_bits = max(1, (n - 1).bit_length())
    if pos_bits + max(1, int(user.max()).bit_length()) > 64:
        return None
    # Sorting unique keys (user, position) packed into one word is a plain numeric sort,
    # several times faster than a stable argsort; the low bits give the permutation back.
    key = user.astype(np.uint64)
    key <<= np.uint64(pos_bits)
    key |= np.arange(n, dtype=np.uint64)
    key.sort()
    return key, pos_bits


def user_time_order(user: npt.NDArray[np.uint32]) -> npt.NDArray[np.int64]:
    """Stable permutation grouping rows by user: rows of one user keep their relative order.

    For rows sorted by time this lists every user's events in time order, users ascending.
    """
    if int(user.shape[0]) == 0:
        return np.zeros(0, np.int64)
    packed = _user_sort_key(user)
    if packed is None:
        return np.argsort(user, kind="stable").astype(np.int64)
    key, pos_bits = packed
    key &= np.uint64((1 << pos_bits) - 1)
    return key.view(np.int64)


def gap_sessions(
    user: npt.NDArray[np.uint32], ts_us: npt.NDArray[np.int64], gap_s: float
) -> npt.NDArray[np.uint32]:
    """Session index per row by inactivity gap, for rows sorted by time.

    ``user`` and ``ts_us`` (microseconds) are parallel arrays with ``ts_us`` non-decreasing.
    Returns UInt32 session indices, dense, numbered in order of session start (row order).
    """
    n = int(user.shape[0])
    if n == 0:
        return np.zeros(0, np.uint32)
    if n > 1 and bool(np.any(ts_us[1:] < ts_us[:-1])):
        raise InternalError("gap_sessions needs rows sorted by time")
    gap_us = round(gap_s * 1e6)
    start = np.empty(n, dtype=bool)
    start[0] = True
    packed = _user_sort_key(user)
    if packed is None:
        order = np.argsort(user, kind="stable").astype(np.int64)
        by_user = user[order]
        np.not_equal(by_user[1:], by_user[:-1], out=start[1:])
    else:
        key, pos_bits = packed
        by_user = key >> np.uint64(pos_bits)
        np.not_equal(by_user[1:], by_user[:-1], out=start[1:])
        key &= np.uint64((1 << pos_bits) - 1)
        order = key.view(np.int64)
    del by_user
    gaps = np.diff(ts_us[order])
    start[1:] |= gaps > gap_us
    del gaps
    return _number_runs(order, start)


def _number_runs(
    order: npt.NDArray[np.int64], start: npt.NDArray[np.bool_]
) -> npt.NDArray[np.uint32]:
    """Dense run ids in row order of each run's first row.

    ``order`` lists rows so that every run is contiguous; ``start`` (in that listing) marks
    the first row of each run.
    """
    n = int(order.shape[0])
    start_in_rows = np.zeros(n, dtype=bool)
    start_in_rows[order] = start
    id_at_start = np.cumsum(start_in_rows, dtype=np.uint32)
    del start_in_rows
    id_of_run = id_at_start[order[start]]
    id_of_run -= np.uint32(1)
    del id_at_start
    run = np.cumsum(start, dtype=np.uint32)
    run -= np.uint32(1)
    session = np.empty(n, dtype=np.uint32)
    session[order] = id_of_run[run]
    return session


def keyed_sessions(user: npt.NDArray[np.uint32], keys: pl.Series) -> npt.NDArray[np.uint32]:
    """Session index per row from a logged session column, for rows sorted by time.

    A session is one (user, logged session id) pair; rows whose logged id is missing form one
    session per user.  Indices are dense, in row order of each session's first row.
    """
    n = int(user.shape[0])
    if n == 0:
        return np.zeros(0, np.uint32)
    frame = pl.DataFrame({"user": user, "key": keys}).with_row_index("row")
    first = (
        frame.group_by(["user", "key"])
        .agg(pl.col("row").min())
        .sort("row")
        .with_row_index("session")
    )
    joined = frame.join(
        first.select("user", "key", "session"),
        on=["user", "key"],
        how="left",
        nulls_equal=True,
        maintain_order="left",
    )
    return joined["session"].to_numpy().astype(np.uint32)


def sessionize(events: pl.DataFrame, gap_s: float) -> pl.DataFrame:
    """Replace the ``session`` column of an event frame sorted by time with gap sessions."""
    user = events["user"].to_numpy()
    ts_us = events["ts"].dt.epoch("us").to_numpy()
    session = gap_sessions(user.astype(np.uint32, copy=False), ts_us, gap_s)
    return events.with_columns(pl.Series("session", session, dtype=pl.UInt32))


def session_starts(events: pl.DataFrame) -> pl.Series:
    """True on the first row of every session (rows sorted by time)."""
    return events["session"].is_first_distinct().alias("session_start")
