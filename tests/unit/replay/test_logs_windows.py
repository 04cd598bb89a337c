"""Windows of replay/windows.py: durations, time points, windows and the split with cold counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import polars as pl
import pytest

from replay.errors import UserInputError
from replay.events import EVENT_SCHEMA, EventTable
from replay.windows import (
    Window,
    WindowSpec,
    log_span,
    parse_duration,
    resolve_time,
    resolve_window,
    split_windows,
)

START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2024, 1, 11, tzinfo=UTC)  # a 10-day log


def at(point: object) -> datetime:
    return resolve_time(point, log_start=START, log_end=END)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("10m", 600),
        ("2h", 7_200),
        ("7d", 604_800),
        ("1w", 604_800),
        ("1h30m", 5_400),
        ("1.5d", 129_600),
        ("250ms", 0.25),
        (" 2H ", 7_200),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "7", "d7", "7 days", "-7d", "7y", "1h 30x"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UserInputError, match="must be a duration like"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("point", "expected"),
    [
        ("2024-01-05T12:00:00Z", datetime(2024, 1, 5, 12, tzinfo=UTC)),
        ("2024-01-05T12:00:00+02:00", datetime(2024, 1, 5, 10, tzinfo=UTC)),
        ("2024-01-05", datetime(2024, 1, 5, tzinfo=UTC)),
        ("-7d", datetime(2024, 1, 4, tzinfo=UTC)),
        ("last 36h", datetime(2024, 1, 9, 12, tzinfo=UTC)),
        ("+2h", datetime(2024, 1, 1, 2, tzinfo=UTC)),
        ("0s", END),
        (0.8, datetime(2024, 1, 9, tzinfo=UTC)),
        ("0.25", datetime(2024, 1, 3, 12, tzinfo=UTC)),
        ("50%", datetime(2024, 1, 6, tzinfo=UTC)),
        (0, START),
        (1, END),
        (
            datetime(2024, 1, 2, 1, tzinfo=timezone(timedelta(hours=1))),
            datetime(2024, 1, 2, tzinfo=UTC),
        ),
    ],
)
def test_resolve_time(point: object, expected: datetime) -> None:
    assert at(point) == expected


@pytest.mark.parametrize(
    ("point", "message"),
    [
        ("7d", "must be a signed offset"),
        (1.5, "fraction of the log's span in [0, 1]"),
        (1_700_000_000, "fraction of the log's span"),
        ("2024-01-05T12:00:00", "must be a time with a zone"),
        (datetime(2024, 1, 5), "must be a time with a zone"),
        ("next tuesday", "must be an ISO time with a zone"),
        (True, "must be a time, an offset or a fraction"),
    ],
)
def test_resolve_time_rejects(point: object, message: str) -> None:
    with pytest.raises(UserInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        at(point)


def test_resolve_window_forms() -> None:
    last = resolve_window("last 2d", log_start=START, log_end=END)
    assert last == Window(datetime(2024, 1, 9, tzinfo=UTC), END)
    first = resolve_window("first 1d", log_start=START, log_end=END)
    assert first == Window(START, datetime(2024, 1, 2, tzinfo=UTC))
    assert resolve_window(WindowSpec(), log_start=START, log_end=END) == Window(START, END)
    assert first.duration_s == 86_400
    with pytest.raises(UserInputError, match=r"replay\.end must not be before replay\.start"):
        resolve_window(WindowSpec(0.9, 0.1), log_start=START, log_end=END, field="replay")
    with pytest.raises(UserInputError, match="must be a window like 'last 7d'"):
        resolve_window("lately", log_start=START, log_end=END)


def table_of(rows: list[tuple[int, int, datetime]]) -> EventTable:
    events = pl.DataFrame(
        {
            "user": [r[0] for r in rows],
            "item": [r[1] for r in rows],
            "ts": [r[2] for r in rows],
            "event": ["view"] * len(rows),
            "weight": [1.0] * len(rows),
            "session": list(range(len(rows))),
        },
        schema=EVENT_SCHEMA,
    )
    n_users = max(r[0] for r in rows) + 1
    n_items = max(r[1] for r in rows) + 1
    return EventTable(events, pl.Series(range(n_users)), pl.Series(range(n_items)))


def day(d: int) -> datetime:
    return START + timedelta(days=d)


def test_split_windows_counts_cold_users_and_items() -> None:
    table = table_of(
        [
            (0, 0, day(0)),
            (1, 1, day(2)),
            (0, 1, day(5)),  # update window
            (2, 2, day(6)),  # update window: user 2 and item 2 first seen here
            (1, 2, day(8)),  # replay: user 1 known, item 2 seen in update only
            (3, 3, day(8)),  # replay: cold user 3, cold item 3
            (3, 0, day(9)),  # replay: cold user 3 again
        ]
    )
    split = split_windows(
        table,
        train=WindowSpec(None, "2024-01-05"),
        update=WindowSpec("2024-01-05", "+7d"),
        replay=WindowSpec("-3d", None),
        allow_overlap=True,  # the update window reaches into the replay window
    )
    assert split.train_events.height == 2
    assert split.update_events is not None and split.update_events.height == 2
    assert split.replay_events.height == 3
    one_us = timedelta(microseconds=1)
    assert split.replay == Window(day(6) + one_us, day(9) + one_us)
    assert (split.replay_users, split.replay_items) == (2, 3)
    assert (split.cold_users, split.cold_items) == (1, 1)
    # item 2 was seen in the update window but not in training
    assert (split.unseen_users, split.unseen_items) == (1, 2)
    summary = split.summary()
    assert summary["replay.cold_users"] == 1
    assert summary["replay.items_not_in_train"] == 2
    assert summary["update.events"] == 2


def test_split_windows_default_is_80_20() -> None:
    table = table_of([(0, 0, day(d)) for d in range(11)])
    split = split_windows(table)
    assert split.train_events.height == 9  # days 0..8 are before 80% of 10 days + 1 µs
    assert split.replay_events.height == 2
    assert split.update is None
    assert log_span(table.events) == (day(0), day(10) + timedelta(microseconds=1))


def test_window_that_starts_at_the_log_start_has_no_cold_history() -> None:
    table = table_of([(0, 0, day(0)), (1, 1, day(1))])
    split = split_windows(table, replay=WindowSpec(), allow_overlap=True)
    assert (split.cold_users, split.cold_items) == (2, 2)
