"""Property tests: row accounting against an independent reference, canonical order and ids,
and the session invariants."""

from __future__ import annotations

import itertools
import math
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replay.errors import UserInputError
from replay.logs import LogSpec, read_log
from replay.sessions import gap_sessions
from replay.validation import SKIP_REASONS, TS_END_S, check_accounting

BASE_S = 1_500_000_000
F32_MAX = float(np.finfo(np.float32).max)  # weights are float32: beyond this they are inf

ids = st.sampled_from(["u0", "u1", "u2", " u1 ", "7", "", "  "])
items = st.sampled_from(["i0", "i1", "i2", "3", ""])
stamps = st.one_of(
    st.integers(0, 40).map(lambda k: str(BASE_S + 30 * k)),
    st.sampled_from(["", "abc", "-5", "NaN", "inf", str(TS_END_S), "1500000000.5", " 1500000060 "]),
)
weights = st.sampled_from(["1", "0", "2.5", "-1", "inf", "-inf", "nan", "x", "", "1e60", " 3 "])
events = st.sampled_from(["view", "click", "buy", ""])
log_rows = st.lists(st.tuples(ids, items, stamps, weights, events), min_size=1, max_size=60)


def reference(
    rows: list[tuple[str, str, str, str, str]], allowed: frozenset[str] | None
) -> tuple[Counter[str], list[tuple[str, str, int]]]:
    """Skip counts and kept (user, item, ts_us) keys, computed row by row in plain Python."""
    skipped: Counter[str] = Counter()
    kept: list[tuple[str, str, int]] = []
    seen: set[tuple[str, str, int]] = set()
    for user, item, stamp, weight, event in rows:
        user, item = user.strip(), item.strip()
        if not user:
            skipped["null_user"] += 1
            continue
        if not item:
            skipped["null_item"] += 1
            continue
        if not stamp.strip():
            skipped["null_timestamp"] += 1
            continue
        try:
            seconds = float(stamp)
        except ValueError:
            seconds = math.nan
        if not (math.isfinite(seconds) and 0 <= seconds < TS_END_S):
            skipped["bad_timestamp"] += 1
            continue
        if allowed is not None and event.strip() not in allowed:
            skipped["unknown_event_type"] += 1
            continue
        try:
            value = float(weight)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and abs(value) <= F32_MAX):
            skipped["non_finite_weight"] += 1
            continue
        if value < 0:
            skipped["negative_weight"] += 1
            continue
        key = (user, item, round(seconds * 1_000_000))
        if key in seen:
            skipped["duplicate"] += 1
            continue
        seen.add(key)
        kept.append(key)
    return skipped, kept


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=log_rows, filtered=st.booleans())
def test_accounting_matches_reference(
    rows: list[tuple[str, str, str, str, str]], filtered: bool
) -> None:
    allowed = frozenset({"view", "click"}) if filtered else None
    skipped, kept = reference(rows, allowed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "log.csv")
        body = "\n".join(",".join(row) for row in rows)
        path.write_text("user,item,ts,weight,event\n" + body + "\n")
        spec = LogSpec(path, timestamp_unit="s", event_types=allowed)
        if not kept:
            with pytest.raises(UserInputError) as caught:
                read_log(spec)
            message = str(caught.value)
            assert f"none of {len(rows)}" in message
            for reason, count in skipped.items():
                assert f"{reason}={count}" in message
            return
        table = read_log(spec)
    accounting = table.accounting
    check_accounting(accounting)
    assert accounting["input_rows"] == len(rows)
    assert accounting["kept"] == len(kept)
    assert {r: accounting[f"skipped.{r}"] for r in SKIP_REASONS if skipped[r]} == dict(skipped)

    frame = table.events
    got = [
        (str(table.user_ids[u]), str(table.item_ids[i]), ts)
        for u, i, ts in zip(
            frame["user"].to_list(),
            frame["item"].to_list(),
            frame["ts"].dt.epoch("us").to_list(),
            strict=True,
        )
    ]
    assert Counter(got) == Counter(kept)
    keys = frame.select("ts", "user", "item")
    assert keys.equals(keys.sort(["ts", "user", "item"]))
    # dense ids, numbered in order of first appearance by time
    for column in ("user", "item"):
        firsts = frame.group_by(column).agg(pl.col("ts").min()).sort(column)
        assert firsts[column].to_list() == list(range(firsts.height))
        assert firsts["ts"].is_sorted()


def assert_session_invariants(
    user: list[int], ts_us: list[int], session: list[int], gap_us: int
) -> None:
    n_sessions = max(session) + 1
    assert sorted(set(session)) == list(range(n_sessions))
    first_row: dict[int, int] = {}
    owner: dict[int, int] = {}
    for row, (u, s) in enumerate(zip(user, session, strict=True)):
        first_row.setdefault(s, row)
        assert owner.setdefault(s, u) == u, "a session belongs to one user"
    assert [first_row[s] for s in range(n_sessions)] == sorted(first_row.values())
    by_user: dict[int, list[tuple[int, int]]] = {}
    for u, t, s in zip(user, ts_us, session, strict=True):
        by_user.setdefault(u, []).append((t, s))
    for timeline in by_user.values():
        finished: set[int] = set()
        for (t0, s0), (t1, s1) in itertools.pairwise(timeline):
            if s0 == s1:
                assert t1 - t0 <= gap_us
            else:
                assert t1 - t0 > gap_us
                finished.add(s0)
                assert s1 not in finished, "sessions are time-contiguous"


@settings(max_examples=150, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 400)), min_size=1, max_size=80),
    gap_s=st.sampled_from([1, 10, 30, 60.5]),
)
def test_gap_sessions_invariants(data: list[tuple[int, int]], gap_s: float) -> None:
    data = sorted(data, key=lambda row: row[1])
    user = np.array([u for u, _ in data], dtype=np.uint32)
    ts_us = np.array([t for _, t in data], dtype=np.int64) * 1_000_000
    session = gap_sessions(user, ts_us, gap_s).tolist()
    assert_session_invariants(user.tolist(), ts_us.tolist(), session, round(gap_s * 1e6))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 6), st.integers(0, 3_000)),
        min_size=1,
        max_size=60,
    ),
    gap_s=st.sampled_from([60, 600]),
)
def test_read_log_sessions_invariants(data: list[tuple[int, int, int]], gap_s: int) -> None:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "log.parquet")
        pl.DataFrame(
            {
                "user": [u for u, _, _ in data],
                "item": [i for _, i, _ in data],
                "ts": [start + timedelta(seconds=t) for _, _, t in data],
            }
        ).write_parquet(path)
        events = read_log(LogSpec(path, session_gap_s=gap_s)).events
    assert_session_invariants(
        events["user"].to_list(),
        events["ts"].dt.epoch("us").to_list(),
        events["session"].to_list(),
        gap_s * 1_000_000,
    )
