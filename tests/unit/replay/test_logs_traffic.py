"""Replay traffic of replay/log_traffic.py: exact request traces and ground truth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replay.errors import UserInputError
from replay.events import EVENT_SCHEMA, EventTable
from replay.log_traffic import LogTraffic, replay_requests
from replay.logs import LogSpec, read_log
from replay.requests import RequestStream
from replay.windows import Window

T0 = datetime(2024, 1, 1, tzinfo=UTC)

#            user item  t (s) session
ROWS = [
    (0, 0, 0, 0),
    (1, 1, 10, 1),
    (0, 2, 20, 0),
    (0, 0, 30, 0),  # user 0 consumes item 0 again in the same session
    (1, 3, 4_000, 2),
    (0, 4, 5_000, 3),
]


def table() -> EventTable:
    events = pl.DataFrame(
        {
            "user": [r[0] for r in ROWS],
            "item": [r[1] for r in ROWS],
            "ts": [T0 + timedelta(seconds=r[2]) for r in ROWS],
            "event": ["view"] * len(ROWS),
            "weight": [1.0] * len(ROWS),
            "session": [r[3] for r in ROWS],
        },
        schema=EVENT_SCHEMA,
    )
    return EventTable(events, pl.Series(range(2)), pl.Series(range(5)))


def truth(stream: RequestStream) -> list[list[int]]:
    assert stream.has_truth
    ptr = stream.truth_ptr
    return [stream.truth_items[ptr[k] : ptr[k + 1]].tolist() for k in range(len(stream))]


def test_each_event_is_a_request_with_the_rest_of_its_session() -> None:
    stream = replay_requests(table())
    assert stream.t_s.tolist() == [0, 10, 20, 30, 4_000, 5_000]
    assert stream.user.tolist() == [0, 1, 0, 0, 1, 0]
    assert stream.session.tolist() == [0, 1, 0, 0, 2, 3]
    assert truth(stream) == [[0, 2], [1], [2, 0], [0], [3], [4]]
    assert stream.t_s.dtype == np.float64
    assert stream.user.dtype == np.int32 and stream.session.dtype == np.int32
    assert stream.truth_ptr.dtype == np.int64 and stream.truth_items.dtype == np.int32


def test_truth_after_the_current_event() -> None:
    stream = replay_requests(table(), traffic=LogTraffic(include_current=False))
    assert truth(stream) == [[2, 0], [], [0], [], [], []]


def test_next_n_events_cross_sessions() -> None:
    stream = replay_requests(table(), traffic=LogTraffic(horizon=2))
    assert truth(stream) == [[0, 2], [1, 3], [2, 0], [0, 4], [3], [4]]


def test_session_starts_only() -> None:
    stream = replay_requests(table(), traffic=LogTraffic(requests="session_start"))
    assert stream.t_s.tolist() == [0, 10, 4_000, 5_000]
    assert stream.session.tolist() == [0, 1, 2, 3]
    assert truth(stream) == [[0, 2], [1], [3], [4]]


def test_max_truth_cuts_the_horizon_to_its_first_events() -> None:
    stream = replay_requests(table(), traffic=LogTraffic(max_truth=1))
    assert truth(stream) == [[0], [1], [2], [0], [3], [4]]
    # three events, two distinct items: the repeat of item 0 is dropped
    stream = replay_requests(table(), traffic=LogTraffic(max_truth=3))
    assert truth(stream) == [[0, 2], [1], [2, 0], [0], [3], [4]]


def test_too_much_truth_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import replay.log_traffic

    monkeypatch.setattr(replay.log_traffic, "MAX_TRUTH_ENTRIES", 6)
    with pytest.raises(UserInputError, match="set max_truth"):
        replay_requests(table())
    assert len(replay_requests(table(), traffic=LogTraffic(max_truth=1))) == 6


def test_speedup_compresses_time() -> None:
    stream = replay_requests(table(), traffic=LogTraffic(speedup=10))
    assert stream.t_s.tolist() == [0, 1, 2, 3, 400, 500]


def test_rate_rescale_and_cap() -> None:
    window = Window(T0, T0 + timedelta(seconds=6_000))
    rescaled = replay_requests(table(), window, LogTraffic(rate_per_s=0.01))
    # 6 requests over 6000 s is 0.001/s; at 0.01/s the same requests fit in 600 s
    assert rescaled.t_s.tolist() == pytest.approx([0, 1, 2, 3, 400, 500])
    capped = replay_requests(table(), window, LogTraffic(rate_per_s=0.01, rate_mode="cap"))
    assert capped.t_s.tolist() == [0, 10, 20, 30, 4_000, 5_000]
    slowed = replay_requests(table(), window, LogTraffic(rate_per_s=0.0005, rate_mode="cap"))
    assert slowed.t_s.tolist() == pytest.approx([0, 20, 40, 60, 8_000, 10_000])


def test_window_limits_requests_and_truth() -> None:
    window = Window(T0 + timedelta(seconds=15), T0 + timedelta(seconds=4_500))
    stream = replay_requests(table(), window)
    assert stream.t_s.tolist() == [5, 15, 3_985]
    assert stream.session.tolist() == [0, 0, 1]
    assert truth(stream) == [[2, 0], [0], [3]]
    starts = replay_requests(table(), window, LogTraffic(requests="session_start"))
    # session 0 started before the window opened
    assert starts.t_s.tolist() == [3_985]
    assert truth(starts) == [[3]]


def test_empty_window() -> None:
    window = Window(T0 + timedelta(days=9), T0 + timedelta(days=10))
    stream = replay_requests(table(), window)
    assert len(stream) == 0
    assert stream.has_truth


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"speedup": 0}, "speedup"),
        ({"speedup": float("nan")}, "speedup"),
        ({"horizon": 0}, "horizon"),
        ({"horizon": "forever"}, "horizon"),
        ({"requests": "sessions"}, "requests"),
        ({"rate_per_s": -1}, "rate_per_s"),
        ({"rate_mode": "clip"}, "rate_mode"),
        ({"max_truth": 0}, "max_truth"),
    ],
)
def test_bad_traffic_settings(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(UserInputError, match=f"traffic: {field} must be"):
        replay_requests(table(), traffic=LogTraffic(**kwargs))  # type: ignore[arg-type]


def test_replay_of_a_read_log(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(
        "user,item,ts\n"
        + "\n".join(f"{k % 7},{k % 11},{1_500_000_000 + 50 * k}" for k in range(300))
    )
    events = read_log(LogSpec(path, session_gap_s=300)).events
    stream = replay_requests(read_log(LogSpec(path, session_gap_s=300)))
    assert len(stream) == events.height
    assert np.all(np.diff(stream.t_s) >= 0)
    # with the current event included, every request's truth starts with its own item
    firsts = stream.truth_items[stream.truth_ptr[:-1]]
    assert firsts.tolist() == events["item"].to_list()


@settings(max_examples=120, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 4), st.integers(0, 5)), min_size=1, max_size=40
    ),
    horizon=st.one_of(st.just("session"), st.integers(1, 4)),
    include_current=st.booleans(),
    max_truth=st.one_of(st.none(), st.integers(1, 3)),
    window_from=st.integers(0, 3),
)
def test_truth_matches_a_direct_computation(
    data: list[tuple[int, int, int]],
    horizon: Literal["session"] | int,
    include_current: bool,
    max_truth: int | None,
    window_from: int,
) -> None:
    # users, items and coarse times; sessions split where a user idles for more than 1 step
    data = sorted(data, key=lambda row: (row[2], row[0], row[1]))
    last_seen: dict[int, int] = {}
    session_of: dict[int, int] = {}
    sessions: list[int] = []
    for user, _, t in data:
        if user not in last_seen or t - last_seen[user] > 1:
            session_of[user] = len(set(sessions) | set(session_of.values()))
        last_seen[user] = t
        sessions.append(session_of[user])
    frame = pl.DataFrame(
        {
            "user": [r[0] for r in data],
            "item": [r[1] for r in data],
            "ts": [T0 + timedelta(seconds=r[2]) for r in data],
            "event": ["view"] * len(data),
            "weight": [1.0] * len(data),
            "session": sessions,
        },
        schema=EVENT_SCHEMA,
    )
    table = EventTable(frame, pl.Series(range(4)), pl.Series(range(5)))
    window = Window(T0 + timedelta(seconds=window_from), T0 + timedelta(seconds=5))
    traffic = LogTraffic(horizon=horizon, include_current=include_current, max_truth=max_truth)
    stream = replay_requests(table, window, traffic)

    inside = [k for k, row in enumerate(data) if window_from <= row[2] < 5]
    expected = []
    for k in inside:
        group = sessions if horizon == "session" else [row[0] for row in data]
        same = [j for j in inside if group[j] == group[k]]
        after = same[same.index(k) + (0 if include_current else 1) :]
        if horizon != "session":
            after = after[: int(horizon)]
        if max_truth is not None:
            after = after[:max_truth]
        items: list[int] = []
        for j in after:
            if data[j][1] not in items:
                items.append(data[j][1])
        expected.append(items)
    assert truth(stream) == expected
    assert stream.user.tolist() == [data[k][0] for k in inside]
