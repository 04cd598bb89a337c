"""Replay traffic: the events of a replay window as a :class:`~replay.requests.RequestStream`.

Each logged event (or only the first event of each session) becomes one request at its
logged time::

    t_s = (ts - window.start) / speedup        # speedup 3600: one logged hour per second

optionally rescaled so that the mean arrival rate over the window, ``requests /
(window length / speedup)``, equals ``rate_per_s`` (``rate_mode="rescale"``) or at most
``rate_per_s`` (``rate_mode="cap"``, which only ever stretches time).

Ground truth per request is the set of items the user consumed next, in CSR layout
(``truth_ptr``, ``truth_items``), within a horizon:

    "session"   the rest of the request's session
    N (int)     the user's next N events, across sessions

Both start at the request's own event when ``include_current`` (the event *is* what the
user consumed right after asking), else just after it, and never look past the end of the
replay window.  ``max_truth`` cuts every horizon to its first so many events.  An item
appears once per request, in order of first consumption.  The size of the truth arrays is
the sum of all horizons, so per-event requests over very long sessions want a
``max_truth``; beyond :data:`MAX_TRUTH_ENTRIES` the call refuses with that advice.

Session indices of the stream are renumbered densely in order of first request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from replay.errors import must_be
from replay.events import EventTable
from replay.requests import RequestStream
from replay.sessions import user_time_order
from replay.windows import Window, log_span

__all__ = ["MAX_TRUTH_ENTRIES", "LogTraffic", "replay_requests", "truth_ranges"]

RequestUnit = Literal["event", "session_start"]
RateMode = Literal["rescale", "cap"]
_Index = npt.NDArray[np.signedinteger[Any]]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# ground-truth entries allowed before expansion (int32 items plus int64 indices: ~1.2 GB)
MAX_TRUTH_ENTRIES = 100_000_000


@dataclass(frozen=True, slots=True)
class LogTraffic:
    """How logged events become requests (see the module docstring)."""

    speedup: float = 1.0
    requests: RequestUnit = "event"
    horizon: Literal["session"] | int = "session"
    include_current: bool = True
    rate_per_s: float | None = None
    rate_mode: RateMode = "rescale"
    max_truth: int | None = None

    def check(self, source: str = "traffic") -> None:
        """Raise :class:`~replay.errors.UserInputError` on an impossible setting."""
        if not _positive(self.speedup):
            raise must_be(source, "speedup", "a finite number > 0", self.speedup)
        if self.requests not in ("event", "session_start"):
            raise must_be(source, "requests", "'event' or 'session_start'", self.requests)
        horizon = self.horizon
        if horizon != "session" and not (
            isinstance(horizon, int) and not isinstance(horizon, bool) and horizon >= 1
        ):
            raise must_be(source, "horizon", "'session' or a number of events >= 1", horizon)
        if self.rate_per_s is not None and not _positive(self.rate_per_s):
            raise must_be(source, "rate_per_s", "a finite number > 0", self.rate_per_s)
        if self.rate_mode not in ("rescale", "cap"):
            raise must_be(source, "rate_mode", "'rescale' or 'cap'", self.rate_mode)
        limit = self.max_truth
        if limit is not None and (
            not isinstance(limit, int) or isinstance(limit, bool) or limit < 1
        ):
            raise must_be(source, "max_truth", "a whole number >= 1", limit)


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _slice_bounds(ts: pl.Series, window: Window) -> tuple[int, int]:
    lo = int(ts.search_sorted(window.start, side="left"))
    hi = int(ts.search_sorted(window.end, side="left"))
    return lo, max(lo, hi)


def truth_ranges(
    group: npt.NDArray[np.uint32],
    rows: npt.NDArray[np.int64],
    *,
    limit: int | None,
    include_current: bool,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Where each request's horizon lies in a listing of rows grouped by ``group``.

    ``group`` (per row, rows in time order) is the session or user of each row; ``rows``
    are the request rows.  Returns ``(order, lo, hi)``: ``order`` lists rows grouped,
    in time order inside each group, and request ``k``'s horizon is ``order[lo[k]:hi[k]]``:
    the rest of its group, or at most ``limit`` rows of it.
    """
    n = int(group.shape[0])
    order = user_time_order(group)
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n, dtype=np.int64)
    listed = group[order]
    boundary = np.flatnonzero(listed[1:] != listed[:-1]) + 1
    run = np.zeros(n, dtype=np.int64)
    run[boundary] = 1
    np.cumsum(run, out=run)
    run_end = np.append(boundary, n)[run]
    at = position[rows]
    lo = at if include_current else at + 1
    hi = run_end[at]
    if limit is not None:
        hi = np.minimum(hi, lo + limit)
    lo = np.minimum(lo, hi)
    return order, lo, hi


def _repeat_distance(group: npt.NDArray[np.uint32], item: npt.NDArray[np.uint32]) -> _Index | None:
    """For rows listed by group in time order: how many rows back the same item last occurred
    in the same group (``n + 1`` if never); None when no item ever repeats in a group."""
    n = int(group.shape[0])
    pos_bits = max(1, (n - 1).bit_length())
    # (item, row) packed into one word and sorted: each item's rows in listing order, where
    # a group's rows are contiguous, so an earlier row in the same group comes right before
    key = item.astype(np.uint64)
    key <<= np.uint64(pos_bits)
    key |= np.arange(n, dtype=np.uint64)
    key.sort()
    rows = (key & np.uint64((1 << pos_bits) - 1)).astype(np.int64)
    key >>= np.uint64(pos_bits)
    same = (key[1:] == key[:-1]) & (group[rows[1:]] == group[rows[:-1]])
    if not bool(same.any()):
        return None
    distance = np.full(n, n + 1, dtype=_index_dtype(n + 1))
    later = rows[1:][same]
    distance[later] = later - rows[:-1][same]
    return distance


def _index_dtype(largest: int) -> np.dtype[np.signedinteger[Any]]:
    if largest < 2**31 - 1:
        return np.dtype(np.int32)
    return np.dtype(np.int64)


def _expand(
    values: npt.NDArray[np.uint32],
    lo: npt.NDArray[np.int64],
    hi: npt.NDArray[np.int64],
    repeat_distance: _Index | None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint32]]:
    """CSR of ``values[lo[k]:hi[k]]`` for every k, without a Python loop.

    With ``repeat_distance`` (see :func:`_repeat_distance`), a value that already occurred
    earlier in the same range is left out: the entry at offset ``o`` of its range repeats
    one iff the previous occurrence is at most ``o`` rows back.
    """
    lengths = hi - lo
    ptr = np.zeros(lengths.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=ptr[1:])
    # 32-bit offsets halve the memory traffic whenever the sizes allow it
    dtype = _index_dtype(max(int(ptr[-1]), values.shape[0] + 1))
    offset = np.arange(int(ptr[-1]), dtype=dtype)
    offset -= np.repeat(ptr[:-1].astype(dtype), lengths)
    index = offset + np.repeat(lo.astype(dtype), lengths)
    out = values[index]
    if repeat_distance is None:
        return ptr, out
    keep = repeat_distance[index] > offset
    del index, offset
    out = out[keep]
    kept_before = np.zeros(keep.shape[0] + 1, dtype=np.int64)
    np.cumsum(keep, out=kept_before[1:])
    return kept_before[ptr], out


def replay_requests(
    table: EventTable,
    window: Window | None = None,
    traffic: LogTraffic | None = None,
    *,
    source: str = "traffic",
    skip: npt.NDArray[np.bool_] | None = None,
) -> RequestStream:
    """Requests from the logged events of ``window`` (default: the whole log).

    ``table.events`` must be sorted by time (the canonical order).  ``skip`` (bool, one per
    event of the window) marks events that are no request (``replay.fold_in`` warm-up rows:
    a user's first events in the window, so no replayed request's truth holds them).
    """
    traffic = traffic or LogTraffic()
    traffic.check(source)
    events = table.events
    if window is None:
        window = Window(*log_span(events))
    lo_row, hi_row = _slice_bounds(events["ts"], window)
    inside = events.slice(lo_row, hi_row - lo_row)
    n = inside.height
    if n == 0:
        return RequestStream(
            t_s=np.zeros(0, np.float64),
            user=np.zeros(0, np.int32),
            session=np.zeros(0, np.int32),
            truth_ptr=np.zeros(1, np.int64),
            truth_items=np.zeros(0, np.int32),
        )
    user = inside["user"].to_numpy()
    session = inside["session"].to_numpy()
    item = inside["item"].to_numpy()
    ts_us = inside["ts"].dt.epoch("us").to_numpy()

    if traffic.requests == "event":
        rows = np.arange(n, dtype=np.int64)
    else:
        first = inside["session"].is_first_distinct().to_numpy()
        if lo_row > 0:
            # a session already under way when the window opens has no start inside it
            earlier = np.zeros(int(session.max()) + 1, dtype=bool)
            before = events["session"].slice(0, lo_row).to_numpy()
            earlier[before[before <= session.max()]] = True
            first &= ~earlier[session]
        rows = np.flatnonzero(first).astype(np.int64)
    if skip is not None:
        if skip.shape != (n,):
            raise must_be(source, "skip", f"one flag per event of the window ({n})", skip.shape)
        rows = rows[~skip[rows]]

    per_session = traffic.horizon == "session"
    group = session if per_session else user
    limit = None if per_session else int(traffic.horizon)
    cut = limit
    if traffic.max_truth is not None:
        cut = traffic.max_truth if cut is None else min(cut, traffic.max_truth)
    order, lo, hi = truth_ranges(group, rows, limit=cut, include_current=traffic.include_current)
    total = int((hi - lo).sum())
    if total > MAX_TRUTH_ENTRIES:
        raise must_be(
            source,
            "horizon",
            f"small enough for at most {MAX_TRUTH_ENTRIES:,} ground-truth entries",
            f"{total:,} entries",
            "set max_truth (e.g. 50) or a horizon of N events",
        )
    listed = item[order]
    truth_ptr, truth = _expand(listed, lo, hi, _repeat_distance(group[order], listed))

    start_us = (window.start - _EPOCH) // timedelta(microseconds=1)
    t_s = (ts_us[rows] - start_us).astype(np.float64)
    t_s /= 1e6 * traffic.speedup
    t_s = _rescale(t_s, window.duration_s / traffic.speedup, traffic)

    stream_session = inside["session"].gather(rows)
    seen = stream_session.unique(maintain_order=True).to_numpy()
    renumber = np.zeros(int(session.max()) + 1, dtype=np.int32)
    renumber[seen] = np.arange(seen.shape[0], dtype=np.int32)
    return RequestStream(
        t_s=t_s,
        user=user[rows].astype(np.int32),
        session=renumber[stream_session.to_numpy()],
        truth_ptr=truth_ptr,
        truth_items=truth.astype(np.int32),
    )


def _rescale(
    t_s: npt.NDArray[np.float64], span_s: float, traffic: LogTraffic
) -> npt.NDArray[np.float64]:
    """Stretch or compress arrival times to the configured mean rate over the window."""
    target = traffic.rate_per_s
    if target is None or t_s.shape[0] == 0 or span_s <= 0:
        return t_s
    rate = t_s.shape[0] / span_s
    if traffic.rate_mode == "cap" and rate <= target:
        return t_s
    t_s *= rate / target
    return t_s
