"""Time windows over a log: train, update and replay, and the split of events into them.

A window is half-open, ``[start, end)``, in UTC.  Its bounds can be written as

    "2018-09-01T00:00:00Z"  an absolute ISO-8601 time with a zone (a bare date such as
                            "2018-09-01" means midnight UTC)
    "-7d", "last 7d"        that long before the end of the log
    "+2h"                   that long after the start of the log
    "0s"                    the end of the log (a zero offset needs no sign)
    0.8, "0.8", "80%"       that fraction of the log's time span after its start
    datetime                an aware ``datetime`` (converted to UTC)

Durations are a number and a unit — ``ms``, ``s``, ``m``, ``h``, ``d``, ``w`` — or several of
them together, e.g. ``"90s"``, ``"10m"``, ``"1h30m"``, ``"1.5d"``.

The log spans ``[first event, last event + 1 µs)``, so that the end of the log, as an
exclusive bound, still includes the last event.  A whole window can also be written as
``"last 7d"`` or ``"first 30d"``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final

import numpy as np
import polars as pl

from replay.errors import UserInputError, must_be
from replay.events import EventTable

__all__ = [
    "TimePoint",
    "Window",
    "WindowSpec",
    "WindowSplit",
    "check_disjoint",
    "log_span",
    "parse_duration",
    "resolve_time",
    "resolve_window",
    "split_windows",
]

TimePoint = str | float | int | datetime

_UNITS_S: Final[dict[str, float]] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3_600.0,
    "d": 86_400.0,
    "w": 604_800.0,
}
_PART: Final[re.Pattern[str]] = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d|w)")
_DURATION: Final[re.Pattern[str]] = re.compile(r"^(?:(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d|w)\s*)+$")
_FRACTION: Final[re.Pattern[str]] = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(%?)$")
_ONE_US: Final[timedelta] = timedelta(microseconds=1)


def parse_duration(text: str, *, source: str = "window", field: str = "duration") -> timedelta:
    """A human duration such as ``"90s"``, ``"10m"``, ``"2h"``, ``"7d"``, ``"1h30m"``."""
    cleaned = text.strip().lower() if isinstance(text, str) else ""
    if not cleaned or not _DURATION.match(cleaned):
        raise must_be(source, field, "a duration like '90s', '10m', '2h', '7d' or '1h30m'", text)
    seconds = sum(float(number) * _UNITS_S[unit] for number, unit in _PART.findall(cleaned))
    return timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class Window:
    """The half-open UTC interval ``[start, end)``."""

    start: datetime
    end: datetime

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """Unresolved window bounds; ``None`` means the start (or end) of the log."""

    start: TimePoint | None = None
    end: TimePoint | None = None

    @classmethod
    def parse(cls, text: str, *, source: str = "window", field: str = "window") -> WindowSpec:
        """``"last 7d"`` (the last 7 days of the log) or ``"first 30d"``."""
        words = text.strip().lower().split(None, 1) if isinstance(text, str) else []
        if len(words) == 2 and words[0] in ("last", "first"):
            length = parse_duration(words[1], source=source, field=field)
            offset = _format_seconds(length.total_seconds())
            if words[0] == "last":
                return cls(start=f"-{offset}", end=None)
            return cls(start=None, end=f"+{offset}")
        raise must_be(source, field, "a window like 'last 7d' or 'first 30d'", text)


def _format_seconds(seconds: float) -> str:
    return f"{seconds:.6f}".rstrip("0").rstrip(".") + "s"


def _utc(moment: datetime, source: str, field: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise must_be(
            source, field, "a time with a zone", moment.isoformat(), "add 'Z' or '+00:00'"
        )
    return moment.astimezone(UTC)


def resolve_time(
    point: TimePoint,
    *,
    log_start: datetime,
    log_end: datetime,
    source: str = "window",
    field: str = "time",
) -> datetime:
    """The UTC datetime a window bound stands for (see the module docstring for forms)."""
    if isinstance(point, datetime):
        return _utc(point, source, field)
    if isinstance(point, bool):
        raise must_be(source, field, "a time, an offset or a fraction", point)
    if isinstance(point, int | float):
        return _fraction(float(point), log_start, log_end, source, field, point)
    if not isinstance(point, str):
        raise must_be(source, field, "a time, an offset or a fraction", point)
    text = point.strip()
    lowered = text.lower()
    if lowered.startswith("last "):
        return log_end - parse_duration(lowered[5:], source=source, field=field)
    if lowered.startswith("-"):
        return log_end - parse_duration(lowered[1:], source=source, field=field)
    if lowered.startswith("+"):
        return log_start + parse_duration(lowered[1:], source=source, field=field)
    fraction = _FRACTION.match(lowered)
    if fraction:
        value = float(fraction.group(1)) / (100.0 if fraction.group(2) else 1.0)
        return _fraction(value, log_start, log_end, source, field, point)
    if _DURATION.match(lowered):
        if parse_duration(lowered, source=source, field=field) == timedelta(0):
            return log_end
        raise must_be(
            source,
            field,
            "a signed offset",
            point,
            f"write '-{text}' for before the end of the log or '+{text}' for after its start",
        )
    return _iso(text, source, field)


def _fraction(
    value: float, log_start: datetime, log_end: datetime, source: str, field: str, shown: object
) -> datetime:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise must_be(
            source,
            field,
            "a fraction of the log's span in [0, 1]",
            shown,
            "write times as ISO strings, e.g. '2018-09-01T00:00:00Z'",
        )
    return log_start + (log_end - log_start) * value


def _iso(text: str, source: str, field: str) -> datetime:
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise must_be(
            source,
            field,
            "an ISO time with a zone, an offset like '-7d' or a fraction like 0.8",
            text,
        ) from None
    return _utc(moment, source, field)


def resolve_window(
    spec: WindowSpec | str,
    *,
    log_start: datetime,
    log_end: datetime,
    source: str = "window",
    field: str = "window",
) -> Window:
    """Resolve a :class:`WindowSpec` (or ``"last 7d"``) against a log's span."""
    if isinstance(spec, str):
        spec = WindowSpec.parse(spec, source=source, field=field)
    start = (
        log_start
        if spec.start is None
        else resolve_time(
            spec.start, log_start=log_start, log_end=log_end, source=source, field=f"{field}.start"
        )
    )
    end = (
        log_end
        if spec.end is None
        else resolve_time(
            spec.end, log_start=log_start, log_end=log_end, source=source, field=f"{field}.end"
        )
    )
    if end < start:
        raise UserInputError(
            f"{source}: {field}.end must not be before {field}.start, got "
            f"[{start.isoformat()}, {end.isoformat()})"
        )
    return Window(start, end)


def log_span(events: pl.DataFrame) -> tuple[datetime, datetime]:
    """``(first event time, last event time + 1 µs)`` of a non-empty frame sorted by ``ts``."""
    if events.height == 0:
        raise UserInputError("events: log must hold at least one event to place windows, got 0")
    first = events["ts"][0]
    last = events["ts"][-1]
    assert isinstance(first, datetime) and isinstance(last, datetime)
    return first, last + _ONE_US


def _slice(events: pl.DataFrame, window: Window) -> pl.DataFrame:
    ts = events["ts"]
    lo = int(ts.search_sorted(window.start, side="left"))
    hi = int(ts.search_sorted(window.end, side="left"))
    return events.slice(lo, max(0, hi - lo))


def _seen(values: pl.Series, size: int) -> np.ndarray[tuple[int], np.dtype[np.bool_]]:
    mask = np.zeros(size, dtype=bool)
    mask[values.to_numpy()] = True
    return mask


@dataclass(frozen=True, slots=True)
class WindowSplit:
    """Events cut into train / update / replay windows, with cold-start counts.

    cold_users / cold_items   users / items whose first event in the whole log falls in the
                              replay window (nobody could have learnt them before it)
    unseen_users / unseen_items  replay-window users / items absent from the train window
    """

    train: Window
    update: Window | None
    replay: Window
    train_events: pl.DataFrame
    update_events: pl.DataFrame | None
    replay_events: pl.DataFrame
    replay_users: int
    replay_items: int
    cold_users: int
    cold_items: int
    unseen_users: int
    unseen_items: int

    def summary(self) -> dict[str, int | str]:
        """Flat figures for the run summary."""
        out: dict[str, int | str] = {
            "train.window": str(self.train),
            "train.events": self.train_events.height,
            "replay.window": str(self.replay),
            "replay.events": self.replay_events.height,
            "replay.users": self.replay_users,
            "replay.items": self.replay_items,
            "replay.cold_users": self.cold_users,
            "replay.cold_items": self.cold_items,
            "replay.users_not_in_train": self.unseen_users,
            "replay.items_not_in_train": self.unseen_items,
        }
        if self.update is not None and self.update_events is not None:
            out["update.window"] = str(self.update)
            out["update.events"] = self.update_events.height
        return out


DEFAULT_TRAIN: Final[WindowSpec] = WindowSpec(start=None, end=0.8)
DEFAULT_REPLAY: Final[WindowSpec] = WindowSpec(start=0.8, end=None)


def _overlap(a: Window, b: Window) -> bool:
    return max(a.start, b.start) < min(a.end, b.end)


def check_disjoint(
    windows: dict[str, Window | None], *, source: str, prefix: str = "", allow: str = ""
) -> None:
    """Refuse two windows that share time: a model judged on (or updated from) events it
    was trained on is leakage, and its results look better than they are."""
    named = [(name, w) for name, w in windows.items() if w is not None]
    for i, (first, a) in enumerate(named):
        for second, b in named[i + 1 :]:
            if _overlap(a, b):
                hint = f" or set {allow} = true" if allow else ""
                raise UserInputError(
                    f"{source}: {prefix}{first} {a} and {prefix}{second} {b} overlap: events "
                    f"of one would also be in the other (leakage); make them disjoint{hint}"
                )


def split_windows(
    table: EventTable,
    *,
    train: WindowSpec | str = DEFAULT_TRAIN,
    replay: WindowSpec | str = DEFAULT_REPLAY,
    update: WindowSpec | str | None = None,
    source: str = "windows",
    prefix: str = "",
    allow_overlap: bool = False,
    allow_setting: str = "",
) -> WindowSplit:
    """Cut a table (sorted by ``ts``) into windows; by default the first 80% of its time span
    trains and the last 20% is replayed.

    The windows must not overlap unless ``allow_overlap`` (``allow_setting`` names the
    setting in the message), and the train window must hold events.  ``prefix`` is put
    before window names in messages (``"traffic.log."``).
    """
    events = table.events
    log_start, log_end = log_span(events)

    def resolve(spec: WindowSpec | str, name: str) -> Window:
        return resolve_window(
            spec, log_start=log_start, log_end=log_end, source=source, field=prefix + name
        )

    train_w = resolve(train, "train")
    replay_w = resolve(replay, "replay")
    update_w = None if update is None else resolve(update, "update")
    if not allow_overlap:
        check_disjoint(
            {"train": train_w, "update": update_w, "replay": replay_w},
            source=source,
            prefix=prefix,
            allow=allow_setting,
        )
    train_events = _slice(events, train_w)
    if train_events.height == 0:
        raise UserInputError(
            f"{source}: {prefix}train {train_w} holds no events of the log, which spans "
            f"{Window(log_start, log_end)} (move the train window into the log's span)"
        )
    replay_events = _slice(events, replay_w)
    update_events = None if update_w is None else _slice(events, update_w)
    before = (
        _slice(events, Window(log_start, replay_w.start))
        if replay_w.start > log_start
        else events.clear()
    )
    n_users, n_items = table.n_users, table.n_items
    replay_user_mask = _seen(replay_events["user"], n_users)
    replay_item_mask = _seen(replay_events["item"], n_items)
    return WindowSplit(
        train=train_w,
        update=update_w,
        replay=replay_w,
        train_events=train_events,
        update_events=update_events,
        replay_events=replay_events,
        replay_users=int(replay_user_mask.sum()),
        replay_items=int(replay_item_mask.sum()),
        cold_users=int((replay_user_mask & ~_seen(before["user"], n_users)).sum()),
        cold_items=int((replay_item_mask & ~_seen(before["item"], n_items)).sum()),
        unseen_users=int((replay_user_mask & ~_seen(train_events["user"], n_users)).sum()),
        unseen_items=int((replay_item_mask & ~_seen(train_events["item"], n_items)).sum()),
    )
