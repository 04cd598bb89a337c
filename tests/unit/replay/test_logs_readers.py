"""Readers of replay/logs.py: every format, timestamp units, ids, order, dedupe, sessions."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from replay.errors import UserInputError
from replay.events import EVENT_SCHEMA
from replay.logs import Columns, LogSpec, _sort_rows, detect_format, read_log
from replay.validation import SKIP_REASONS, check_accounting


def _movielens() -> Path:
    """MovieLens latest-small ratings: $ROLLOUT_LAB_DATA, else the shared data folder."""
    shared = Path(__file__).resolve().parents[3].parent / "shared" / "data"
    folders = [Path(os.environ["ROLLOUT_LAB_DATA"])] if "ROLLOUT_LAB_DATA" in os.environ else []
    folders.append(shared)
    for folder in folders:
        for candidate in (
            folder / "ratings.csv",
            folder / "movielens-latest-small" / "ratings.csv",
        ):
            if candidate.exists():
                return candidate
    return shared / "movielens-latest-small" / "ratings.csv"


MOVIELENS = _movielens()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def rows(table_events: pl.DataFrame) -> list[tuple[object, ...]]:
    return table_events.select("user", "item", "ts", "weight", "session").rows()


def assert_canonical(events: pl.DataFrame) -> None:
    assert dict(events.schema) == EVENT_SCHEMA
    keys = events.select("ts", "user", "item")
    assert keys.equals(keys.sort(["ts", "user", "item"]))


# ------------------------------------------------------------------ formats


def test_movielens_csv(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ratings.csv",
        "userId,movieId,rating,timestamp\n"
        "7,30,4.0,964982703\n"
        "7,10,3.5,964982703\n"
        "3,10,5.0,964982600\n",
    )
    assert detect_format(path) == "movielens_csv"
    table = read_log(LogSpec(path))
    assert_canonical(table.events)
    # user 3 rated first, so it is user 0; item 10 is first seen with user 3
    assert table.user_ids.to_list() == [3, 7]
    assert table.item_ids.to_list() == [10, 30]
    assert table.user_ids.dtype == pl.Int64
    assert rows(table.events) == [
        (0, 0, utc(2000, 7, 30, 18, 43, 20), 5.0, 0),
        (1, 0, utc(2000, 7, 30, 18, 45, 3), 3.5, 1),
        (1, 1, utc(2000, 7, 30, 18, 45, 3), 4.0, 1),
    ]
    assert table.events["event"].to_list() == ["rating"] * 3
    assert table.accounting["input_rows"] == 3
    assert table.accounting["kept"] == 3
    assert table.source == str(path)


def test_movielens_udata(tmp_path: Path) -> None:
    path = write(tmp_path / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    assert detect_format(path) == "movielens_udata"
    table = read_log(LogSpec(path))
    assert table.user_ids.to_list() == [196, 186]
    assert table.item_ids.to_list() == [242, 302]
    assert table.events["weight"].to_list() == [3.0, 3.0]
    assert table.events["ts"][0] == utc(1997, 12, 4, 15, 55, 49)


def test_recbole_inter(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ml.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "u1\ti9\t4\t881250949.5\n"
        "u2\ti9\t2\t881250949\n",
    )
    assert detect_format(path) == "recbole_inter"
    table = read_log(LogSpec(path))
    assert table.user_ids.to_list() == ["u2", "u1"]
    assert table.events["ts"].to_list() == [
        utc(1997, 12, 4, 15, 55, 49),
        datetime(1997, 12, 4, 15, 55, 49, 500_000, tzinfo=UTC),
    ]
    assert table.events["weight"].to_list() == [2.0, 4.0]


def test_recbole_header_detected_without_extension(tmp_path: Path) -> None:
    path = write(tmp_path / "log.txt", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n")
    assert detect_format(path) == "recbole_inter"


def test_generic_csv_with_mapping_events_and_iso(tmp_path: Path) -> None:
    path = write(
        tmp_path / "clicks.csv",
        "who,what,when,kind,dwell\n"
        "alice,x,2024-03-01T10:00:00Z,view,1.5\n"
        "bob,y,2024-03-01T10:00:00+01:00,click,2\n",
    )
    spec = LogSpec(
        path,
        columns=Columns(user="who", item="what", timestamp="when", event="kind", weight="dwell"),
    )
    table = read_log(spec)
    assert table.user_ids.to_list() == ["bob", "alice"]
    assert table.events["event"].to_list() == ["click", "view"]
    assert table.events["ts"].to_list() == [utc(2024, 3, 1, 9), utc(2024, 3, 1, 10)]
    assert table.events["weight"].to_list() == [2.0, 1.5]


def test_generic_columns_are_guessed(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "user_id,item_id,timestamp,rating\n1,2,1500000000,4\n")
    table = read_log(LogSpec(path))
    assert table.events["weight"].to_list() == [4.0]
    assert table.events["event"].to_list() == ["interaction"]


def test_tsv_extension_uses_tabs(tmp_path: Path) -> None:
    path = write(tmp_path / "log.tsv", "user\titem\tts\n1\t2\t1500000000\n")
    assert read_log(LogSpec(path)).events.height == 1


def test_explicit_delimiter(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.csv", "userId;movieId;rating;timestamp\n1;2;4.0;964982703\n")
    table = read_log(LogSpec(path, format="csv", delimiter=";"))
    assert table.events["weight"].to_list() == [4.0]


def test_parquet_with_datetimes_and_nulls(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pl.DataFrame(
        {
            "user": [1, 2, None, 4],
            "item": ["a", "b", "c", "d"],
            "ts": [datetime(2024, 1, 1), datetime(2024, 1, 2), datetime(2024, 1, 3), None],
            "weight": [1.0, float("nan"), 1.0, 1.0],
        }
    ).write_parquet(path)
    assert detect_format(path) == "parquet"
    table = read_log(LogSpec(path))
    assert table.accounting["skipped.null_user"] == 1
    assert table.accounting["skipped.null_timestamp"] == 1
    assert table.accounting["skipped.non_finite_weight"] == 1
    # naive parquet datetimes are read as UTC
    assert table.events["ts"].to_list() == [utc(2024, 1, 1)]
    assert table.user_ids.to_list() == [1]


def test_parquet_zoned_datetimes_convert_to_utc(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    frame = pl.DataFrame({"user": [1], "item": [2], "ts": [datetime(2024, 1, 1, 12)]})
    frame.with_columns(pl.col("ts").dt.replace_time_zone("Europe/Paris")).write_parquet(path)
    assert read_log(LogSpec(path)).events["ts"].to_list() == [utc(2024, 1, 1, 11)]


def test_ndjson(tmp_path: Path) -> None:
    path = write(
        tmp_path / "log.jsonl",
        '{"user": 5, "item": "p", "ts": 1500000000000, "event": "buy"}\n'
        '{"user": "5", "item": "q", "ts": "1500000001000"}\n',
    )
    assert detect_format(path) == "ndjson"
    table = read_log(LogSpec(path))
    assert table.user_ids.to_list() == [5]
    assert table.events["event"].to_list() == ["buy", "interaction"]
    assert table.events["ts"].to_list() == [utc(2017, 7, 14, 2, 40), utc(2017, 7, 14, 2, 40, 1)]


def test_crlf_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes(b"user,item,ts\r\n1,2,1500000000\r\n3,4,1500000001\r\n")
    table = read_log(LogSpec(path))
    assert table.user_ids.to_list() == [1, 3]
    assert table.events["ts"].to_list() == [utc(2017, 7, 14, 2, 40), utc(2017, 7, 14, 2, 40, 1)]


def test_sparse_integer_and_float_ids(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pl.DataFrame(
        {"user": [10**15, 1, 10**15], "item": [1.5, 2.5, 2.5], "ts": [3, 1, 2]}
    ).write_parquet(path)
    table = read_log(LogSpec(path, timestamp_unit="s"))
    assert table.user_ids.to_list() == [1, 10**15]
    assert table.item_ids.to_list() == [2.5, 1.5]
    assert table.events.select("user", "item").rows() == [(0, 0), (1, 0), (1, 1)]


def test_event_types_accepts_any_collection(tmp_path: Path) -> None:
    spec = LogSpec("log.csv", event_types={"view"})  # type: ignore[arg-type]
    assert spec.event_types == frozenset({"view"})
    with pytest.raises(UserInputError, match="event_types must be a set of strings"):
        LogSpec("log.csv", event_types="view")  # type: ignore[arg-type]


def test_public_surface() -> None:
    import replay.log_traffic
    import replay.logs
    import replay.sessions
    import replay.validation
    import replay.windows

    for module in (
        replay.logs,
        replay.validation,
        replay.sessions,
        replay.windows,
        replay.log_traffic,
    ):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_forced_format_mismatch_is_one_line_error(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "user,item,ts\n1,2,3\n")
    with pytest.raises(UserInputError, match="file must be Parquet") as caught:
        read_log(LogSpec(path, format="parquet"))
    assert "\n" not in str(caught.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="no such file"):
        read_log(LogSpec(tmp_path / "nope.csv"))
    with pytest.raises(UserInputError, match="got a directory"):
        read_log(LogSpec(tmp_path))


def test_movielens_forced_on_semicolons_names_the_delimiter(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.csv", "userId;movieId;rating;timestamp\n1;2;4.0;964982703\n")
    with pytest.raises(UserInputError) as caught:
        read_log(LogSpec(path, format="movielens_csv"))
    message = str(caught.value)
    assert message.startswith(f"{path}: column 'userId' is missing")
    assert "looks ';'-separated" in message and "traffic.log.delimiter = ';'" in message


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"format": "xml"}, "format"),
        ({"timestamp_unit": "ns"}, "timestamp_unit"),
        ({"dedupe": "sum"}, "dedupe"),
        ({"session_gap_s": 0}, "session_gap_s"),
        ({"session_gap_s": float("inf")}, "session_gap_s"),
        ({"delimiter": ";;"}, "delimiter"),
    ],
)
def test_bad_spec(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(UserInputError, match=f"log spec: {field} must be"):
        LogSpec("x.csv", **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ timestamps


def test_epoch_unit_auto_detects_milliseconds(tmp_path: Path) -> None:
    seconds = write(tmp_path / "s.csv", "user,item,ts\n1,2,1500000000\n")
    millis = write(tmp_path / "ms.csv", "user,item,ts\n1,2,1500000000000\n")
    expected = [utc(2017, 7, 14, 2, 40)]
    assert read_log(LogSpec(seconds)).events["ts"].to_list() == expected
    assert read_log(LogSpec(millis)).events["ts"].to_list() == expected
    # forcing the wrong unit leaves nothing usable and says so
    with pytest.raises(UserInputError, match="bad_timestamp=1"):
        read_log(LogSpec(millis, timestamp_unit="s"))


def test_forced_units(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "user,item,ts\n1,2,86400000\n")
    assert read_log(LogSpec(path, timestamp_unit="ms")).events["ts"][0] == utc(1970, 1, 2)
    assert read_log(LogSpec(path, timestamp_unit="s")).events["ts"][0] == utc(1972, 9, 27)


def test_iso_unit_on_numbers_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pl.DataFrame({"user": [1], "item": [2], "ts": [1500000000]}).write_parquet(path)
    with pytest.raises(UserInputError, match="must hold ISO-8601 strings"):
        read_log(LogSpec(path, timestamp_unit="iso"))


def test_parquet_dates_are_midnight_utc(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    frame = pl.DataFrame({"user": [1], "item": [2], "ts": [datetime(2024, 5, 6)]})
    frame.with_columns(pl.col("ts").dt.date()).write_parquet(path)
    assert read_log(LogSpec(path)).events["ts"].to_list() == [utc(2024, 5, 6)]


def test_iso_unit_forced_on_text(tmp_path: Path) -> None:
    path = write(
        tmp_path / "log.csv",
        "user,item,ts\n1,2,2024-05-06T07:08:09.5Z\n1,3,2024-05-06T07:08Z\n1,4,1500000000\n",
    )
    table = read_log(LogSpec(path, timestamp_unit="iso"))
    assert table.events["ts"].to_list() == [
        utc(2024, 5, 6, 7, 8),
        datetime(2024, 5, 6, 7, 8, 9, 500_000, tzinfo=UTC),
    ]
    assert table.accounting["skipped.bad_timestamp"] == 1


def test_float_seconds_keep_microseconds(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pl.DataFrame({"user": [1], "item": [2], "ts": [1500000000.123456]}).write_parquet(path)
    ts = read_log(LogSpec(path)).events["ts"][0]
    assert ts == datetime(2017, 7, 14, 2, 40, 0, 123456, tzinfo=UTC)


# ------------------------------------------------------------------ ids, order, dedupe


def test_ids_by_first_appearance_ties_by_raw_id(tmp_path: Path) -> None:
    path = write(
        tmp_path / "log.csv",
        "user,item,ts\nb,z,20\n10,y,10\n9,x,10\na,x,30\n",
    )
    table = read_log(LogSpec(path, timestamp_unit="s"))
    # users "10" and "9" both first appear at t=10: text ids tie-break lexicographically
    assert table.user_ids.to_list() == ["10", "9", "b", "a"]
    assert table.item_ids.to_list() == ["x", "y", "z"]
    assert table.events.select("user", "item").rows() == [(0, 1), (1, 0), (2, 2), (3, 0)]


def test_integer_text_ids_tie_break_numerically(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "user,item,ts\n10,1,5\n9,1,5\n")
    table = read_log(LogSpec(path, timestamp_unit="s"))
    assert table.user_ids.to_list() == [9, 10]
    assert table.user_ids.dtype == pl.Int64


def test_non_canonical_integers_stay_text(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "user,item,ts\n007,1,5\n7,1,6\n")
    assert read_log(LogSpec(path, timestamp_unit="s")).user_ids.to_list() == ["007", "7"]


@pytest.mark.parametrize(
    ("policy", "weights"),
    [("first", [1.0, 3.0, 4.0]), ("last", [5.0, 3.0, 4.0]), ("none", [1.0, 2.0, 5.0, 3.0, 4.0])],
)
def test_dedupe_policies(tmp_path: Path, policy: str, weights: list[float]) -> None:
    path = write(
        tmp_path / "log.csv",
        "user,item,ts,rating\n1,10,100,1\n1,10,100,2\n2,10,100,3\n1,10,101,4\n1,10,100,5\n",
    )
    table = read_log(LogSpec(path, dedupe=policy))  # type: ignore[arg-type]
    assert table.events["weight"].to_list() == weights
    dropped = 5 - len(weights)
    assert table.accounting["skipped.duplicate"] == dropped
    check_accounting(table.accounting)


def test_dedupe_keeps_first_in_file_order_far_apart(tmp_path: Path) -> None:
    # many rows between the duplicates, so that a reader working in chunks would split them
    lines = ["user,item,ts,rating", "1,1,1500000000,7"]
    lines += [f"{2 + k},{k},{1500000001 + k},1" for k in range(150_000)]
    lines += ["1,1,1500000000,9"]
    table = read_log(LogSpec(write(tmp_path / "log.csv", "\n".join(lines) + "\n")))
    assert table.events["weight"][0] == 7.0
    assert table.accounting["skipped.duplicate"] == 1


def test_sort_rows_matches_a_stable_reference() -> None:
    rng = np.random.default_rng(3)
    n = 5_000
    ts = rng.integers(0, 50, n).astype(np.int64) * 1_000_000 + 1_600_000_000_000_000
    user = rng.integers(0, 40, n).astype(np.uint32)
    item = rng.integers(0, 30, n).astype(np.uint32)
    reference = (
        pl.DataFrame({"ts": ts, "user": user, "item": item})
        .with_row_index("row")
        .sort(["ts", "user", "item"], maintain_order=True)["row"]
        .to_numpy()
    )
    for resolution in (1, 1_000_000):
        order, ts_sorted, user_sorted, item_sorted = _sort_rows(ts, user, item, resolution)
        np.testing.assert_array_equal(order, reference)
        np.testing.assert_array_equal(ts_sorted, ts[reference])
        np.testing.assert_array_equal(user_sorted, user[reference])
        np.testing.assert_array_equal(item_sorted, item[reference])


def test_sort_rows_wide_timestamps_fall_back() -> None:
    rng = np.random.default_rng(4)
    n = 2_000
    # microsecond times spread over decades cannot be packed with the row position
    ts = rng.integers(0, 2**62, n).astype(np.int64)
    ts[::7] = ts[0]
    user = rng.integers(0, 5, n).astype(np.uint32)
    item = rng.integers(0, 5, n).astype(np.uint32)
    order, ts_sorted, _, _ = _sort_rows(ts, user, item, 1)
    keys = list(zip(ts_sorted.tolist(), user[order].tolist(), item[order].tolist(), strict=True))
    assert keys == sorted(keys)
    assert sorted(order.tolist()) == list(range(n))


# ------------------------------------------------------------------ events and sessions


def test_event_types_filter_and_default(tmp_path: Path) -> None:
    path = write(
        tmp_path / "log.csv",
        "user,item,ts,event\n1,2,100,view\n1,3,101,\n1,4,102,buy\n1,5,103,click\n",
    )
    kept = read_log(LogSpec(path, timestamp_unit="s", event_types=frozenset({"view", "click"})))
    assert kept.events["event"].to_list() == ["view", "click"]
    assert kept.accounting["skipped.unknown_event_type"] == 2
    unfiltered = read_log(LogSpec(path, timestamp_unit="s", default_event="unknown"))
    assert unfiltered.events["event"].to_list() == ["view", "unknown", "buy", "click"]


def test_gap_sessions_from_reader(tmp_path: Path) -> None:
    path = write(
        tmp_path / "log.csv",
        "user,item,ts\n"
        "1,1,0\n"
        "2,1,10\n"
        "1,2,60\n"  # 60 s after user 1's last event: same session (gap 60)
        "1,3,121\n"  # 61 s later: new session
        "2,2,70\n",
    )
    table = read_log(LogSpec(path, timestamp_unit="s", session_gap_s=60))
    assert table.events.select("user", "session").rows() == [
        (0, 0),
        (1, 1),
        (0, 0),
        (1, 1),
        (0, 2),
    ]


def test_logged_session_column(tmp_path: Path) -> None:
    path = write(
        tmp_path / "log.csv",
        "user,item,ts,sid\n1,1,0,a\n1,2,5000,a\n1,3,5001,b\n2,1,1,a\n",
    )
    table = read_log(
        LogSpec(
            path,
            timestamp_unit="s",
            columns=Columns(user="user", item="item", timestamp="ts", session="sid"),
        )
    )
    # the logged id groups events 5000 s apart; the same id of another user is another session
    assert table.events.select("user", "session").rows() == [(0, 0), (1, 1), (0, 0), (0, 2)]


def test_accounting_keys_are_complete(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "user,item,ts\n1,2,1500000000\n")
    accounting = read_log(LogSpec(path)).accounting
    assert set(accounting) == {"input_rows", "kept"} | {f"skipped.{r}" for r in SKIP_REASONS}


# ------------------------------------------------------------------ real data


@pytest.mark.skipif(not MOVIELENS.exists(), reason="MovieLens latest-small not available")
def test_movielens_latest_small() -> None:
    table = read_log(LogSpec(MOVIELENS))
    assert table.events.height == 100_836
    assert table.n_users == 610
    assert table.n_items == 9_724
    assert table.accounting["input_rows"] == 100_836
    assert table.accounting["kept"] == 100_836
    check_accounting(table.accounting)
    assert_canonical(table.events)
    first = table.events.row(0, named=True)
    assert first["ts"] == utc(1996, 3, 29, 18, 36, 55)
    sessions = table.events["session"]
    assert sessions.n_unique() == int(sessions.max()) + 1  # type: ignore[arg-type]
