"""Fuzzing the log readers (Hypothesis): random small CSV, TSV and NDJSON files.

Each example writes a file built from a random header (real column names and noise), rows
of random cells (ids, epoch seconds and milliseconds, ISO times with and without zones,
ratings, empty cells, quotes, delimiters, unicode, huge numbers), a random delimiter and
line ending, sometimes a byte-order mark, then a few random byte edits; it is read with
``replay.logs.read_log`` under a random format (``auto`` or forced) and options.
Property: a canonical table whose row accounting adds up, or one-line ``UserInputError``
naming the file.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fuzzing import FAST, LONG, attempt, describe
from hypothesis import given, note, settings
from hypothesis import strategies as st

from replay.logs import LogSpec, read_log
from replay.validation import check_accounting

COLUMNS = [
    "user",
    "item",
    "timestamp",
    "ts",
    "rating",
    "weight",
    "event",
    "userId",
    "movieId",
    "user_id:token",
    "item_id:token",
    "timestamp:float",
    "rating:float",
    "session",
    "",
    "x",
]
CELLS = st.one_of(
    st.integers(-5, 60).map(str),
    st.integers(0, 2**63).map(str),
    st.integers(1_400_000_000, 1_700_000_000).map(str),
    st.integers(1_400_000_000_000, 1_700_000_000_000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [
            "",
            " ",
            "NaN",
            "inf",
            "-inf",
            "null",
            "2024-01-01T10:00:00Z",
            "2024-01-01T10:00:00",
            "2024-13-45T99:99:99+25:00",
            "1970-01-01T00:00:00+00:00",
            "click",
            "view",
            "rating",
            '"quoted, with comma"',
            '"',
            "\t",
            ";",
            "|",
            "é",
            "\u202e",
            "9" * 30,
        ]
    ),
    st.text(max_size=6),
)
SUFFIXES = [".csv", ".tsv", ".txt", ".ndjson", ".jsonl", ".json", ".data", ".inter", ""]
FORMATS = ["auto", "auto", "auto", "csv", "movielens_csv", "movielens_udata", "recbole_inter"]
FORMATS += ["ndjson", "parquet"]


ROLE_CELLS = {
    "user": st.integers(0, 30).map(str) | st.sampled_from(["u1", "u2", "", "17", "017"]),
    "item": st.integers(0, 30).map(str) | st.sampled_from(["i1", "i2", "", "-3"]),
    "timestamp": st.one_of(
        st.integers(1_500_000_000, 1_500_100_000).map(str),
        st.integers(1_500_000_000_000, 1_500_100_000_000).map(str),
        st.sampled_from(["2024-01-01T10:00:00Z", "2024-01-02T10:00:00+02:00", "", "x"]),
    ),
    "rating": st.sampled_from(["1", "4.5", "0", "-1", "nan", "inf", ""]),
    "event": st.sampled_from(["click", "view", "rating", ""]),
}


@st.composite
def plausible_table(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    """A header with the real roles (in any order) and rows of typed cells, mostly valid."""
    roles = draw(st.permutations(["user", "item", "timestamp"]))
    roles += draw(st.lists(st.sampled_from(["rating", "event"]), max_size=2, unique=True))
    n = draw(st.integers(1, 30))
    rows = [[draw(ROLE_CELLS[role]) for role in roles] for _ in range(n)]
    return roles, rows


@st.composite
def log_files(draw: st.DrawFn) -> tuple[bytes, str, dict[str, Any]]:
    """(file bytes, file suffix, LogSpec options)."""
    # A third of the files are plausible logs read with matching options, so that the
    # accepting path (accounting, sorting, dense ids) is exercised too.
    clean = draw(st.integers(0, 2)) == 0
    if clean or draw(st.booleans()):
        header, rows = draw(plausible_table())
    else:
        header = draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=6))
        rows = draw(st.lists(st.lists(CELLS, min_size=0, max_size=7), max_size=12))
    shape = draw(
        st.sampled_from(["delimited", "ndjson"] if clean else ["delimited", "ndjson", "headerless"])
    )
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    if shape == "ndjson":
        lines = []
        for row in rows:
            pairs = dict(zip(header, row, strict=False))
            if draw(st.booleans()):
                lines.append(json.dumps(pairs))
            else:
                cells = [
                    (k, draw(st.one_of(st.integers(), st.floats(), st.none(), CELLS)))
                    for k in pairs
                ]
                lines.append(json.dumps(dict(cells), allow_nan=True))
        text = newline.join(lines)
    else:
        delimiter = "," if clean else draw(st.sampled_from([",", "\t", ";", "|", " "]))
        lines = [] if shape == "headerless" else [delimiter.join(header)]
        lines += [delimiter.join(row) for row in rows]
        text = newline.join(lines) + draw(st.sampled_from(["", newline]))
    data = bytearray(text.encode("utf-8", errors="surrogatepass"))
    if draw(st.booleans()):
        data[:0] = b"\xef\xbb\xbf"
    for _ in range(0 if clean else draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["flip", "cut", "insert"]))
        if edit == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif edit == "cut":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
    options: dict[str, Any] = {
        "format": draw(st.sampled_from(FORMATS)),
        "timestamp_unit": draw(st.sampled_from(["auto", "auto", "s", "ms", "iso"])),
        "dedupe": draw(st.sampled_from(["first", "last", "none"])),
        "delimiter": draw(st.sampled_from([None, None, ",", "\t", ";"])),
        "event_types": draw(st.sampled_from([None, None, frozenset({"click"})])),
    }
    if clean:
        options = {"format": "auto"}
        return bytes(data), ".ndjson" if shape == "ndjson" else ".csv", options
    return bytes(data), draw(st.sampled_from(SUFFIXES)), options


def check_log(case: tuple[bytes, str, dict[str, Any]]) -> None:
    data, suffix, options = case
    note(describe(data))
    note(f"suffix {suffix!r}, options {options}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        table = attempt(lambda: read_log(LogSpec(path, **options)), names=(f"{path}: ",))
    if table is not None:
        check_accounting(table.accounting)
        assert table.events.height == table.accounting["kept"] > 0
        ts = table.events["ts"]
        assert ts.is_sorted()
        assert table.events["user"].max() < table.user_ids.len()  # type: ignore[operator]
        assert table.events["item"].max() < table.item_ids.len()  # type: ignore[operator]


def _fuzz(profile: settings) -> Callable[[], None]:
    @profile
    @given(log_files())
    def fuzz(case: tuple[bytes, str, dict[str, Any]]) -> None:
        check_log(case)

    return fuzz


test_fuzz_log_readers = _fuzz(FAST)
test_fuzz_log_readers_long = pytest.mark.slow(_fuzz(LONG))
