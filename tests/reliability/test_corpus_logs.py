"""Broken logs through the real CLI: ``rollout-lab run scenarios/movielens_replay.toml --log
FILE`` exits 2 with one line naming the file, what is wrong and the fix, and writes nothing.

The corpus is the reader's own (``tests/unit/replay/broken_logs``, the files that cannot be
used at all) plus ``corpus/logs`` (binary noise, byte-order marks, JSON that is not NDJSON,
timestamps out of range, logs too short to split into windows, terminal escape codes).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from reliability_support import CORPUS, MOVIELENS_REPLAY, ROOT, Outcome

UNIT = ROOT / "tests" / "unit" / "replay" / "broken_logs"
OURS = CORPUS / "logs"
PREFIX = "rollout-lab: error: "
NO_REPLAY = "movielens_replay.toml: traffic.log.replay holds no events in "
MOVE_WINDOW = "(move the replay window into the log's time span)"

# file -> fragments the one line must hold, in order (the path of the log comes first
# unless the first fragment names the scenario)
CASES: dict[Path, tuple[str, ...]] = {
    UNIT / "ratings_semicolon.csv": ("column for the user", "looks ';'-separated", "';'"),
    UNIT / "empty.csv": ("got an empty file (0 bytes", "export the log again"),
    UNIT / "blank_lines.csv": ("got an empty file (only blank lines",),
    UNIT / "header_only.csv": ("at least one data row, got none", "user, item, ts"),
    UNIT / "no_timestamp_column.csv": ("column for the timestamp", "found user, item, rating"),
    UNIT / "all_bad_timestamps.csv": ("none of 3", "'yesterday'", "fix: set timestamp_unit"),
    UNIT / "only_views.ndjson": ("unknown_event_type=2", "'view'", "fix: add the log's event"),
    UNIT / "truncated.ndjson": ("must be NDJSON", "check every line is one JSON object"),
    UNIT / "not_really.parquet": ("must be Parquet", "PAR1"),
    UNIT / "u_commas.data": ("4 '\\t'-separated fields", "looks ','-separated", "delimiter=','"),
    UNIT / "ragged.csv": ("rows fit its header", "quote values"),
    UNIT / "unknown_format.xyz": ("format must be recognisable", "'.xyz'", "pass format="),
    UNIT / "latin1.csv": ("must be UTF-8 text", "iconv -f latin1 -t utf-8"),
    UNIT / "does_not_exist.csv": ("log file must exist, got no such file (check the path)",),
    OURS / "binary_garbage.csv": ("column for the user", "is missing"),
    OURS / "bom_only.csv": ("column for the user", "is missing"),
    OURS / "crlf_header_only.tsv": ("at least one data row, got none", "user, item, timestamp"),
    OURS / "duplicate_columns.csv": (NO_REPLAY, MOVE_WINDOW),
    OURS / "escape_codes.csv": ("column for the user", "us\\x1b[31mer\\x1b]0;owned\\x07"),
    OURS / "iso_without_zone.csv": ("bad_timestamp=50", "ISO times need a zone"),
    OURS / "json_array.json": ("must be NDJSON", "JSON object"),
    OURS / "negative_times.csv": (NO_REPLAY, MOVE_WINDOW),
    OURS / "nul_bytes.csv": (NO_REPLAY, MOVE_WINDOW),
    OURS / "numbers.ndjson": ("must be NDJSON", "JSON object"),
    OURS / "one_row.csv": (NO_REPLAY, MOVE_WINDOW),
    OURS / "only_commas.csv": ("column for the user", "map it with traffic.log.columns ="),
    OURS / "same_instant.csv": (NO_REPLAY, MOVE_WINDOW),
    OURS / "unclosed_quote.csv": ("must be a readable log", "check the format and delimiter"),
    OURS / "untyped_header.inter": (NO_REPLAY, MOVE_WINDOW),
    OURS / "words.data": ("none of 1", "'monday'", "fix: set timestamp_unit"),
    OURS / "year_ten_million.csv": ("bad_timestamp=50", "'100000000000000000'"),
}

PARAMS = [
    pytest.param(log, fragments, id=f"{log.parent.name}/{log.name}")
    for log, fragments in CASES.items()
]
# Fewer items than the list size: once an internal error, now a one-line refusal.
PARAMS.append(pytest.param(OURS / "few_items.csv", ("users.list_size",), id="few_items.csv"))


def test_corpus_is_big_enough_and_listed() -> None:
    assert len(CASES) >= 20
    ours = set(OURS.iterdir())
    listed = {*CASES, OURS / "few_items.csv"}
    assert ours == {path for path in listed if path.parent == OURS}


@pytest.mark.parametrize(("log", "fragments"), PARAMS)
def test_broken_log_exits_2_with_one_line(
    log: Path, fragments: tuple[str, ...], tmp_path: Path, cli: Callable[..., Outcome]
) -> None:
    out = tmp_path / "out"
    # The event filter only matters for the log whose every row is a "view".
    events = (
        ["--set", 'traffic.log.event_types=["click"]'] if log.name == "only_views.ndjson" else []
    )
    result = cli("run", str(MOVIELENS_REPLAY), "--out", str(out), "--log", str(log), *events)
    assert result.code == 2, result.err
    assert len(result.err) == 1, result.err
    message = result.err[0].removeprefix(PREFIX)
    if fragments[0] != NO_REPLAY:
        assert message.startswith(f"{log}: "), message
    at = 0
    for fragment in fragments:
        found = message.find(fragment, at)
        assert found >= 0, f"{fragment!r} missing (in order) from {message!r}"
        at = found + len(fragment)
    assert message.isprintable()
    assert not out.exists()


def test_tiny_valid_log_runs_cleanly(tmp_path: Path, cli: Callable[..., Outcome]) -> None:
    log = CORPUS / "valid_logs" / "twenty_rows.csv"
    result = cli("run", str(MOVIELENS_REPLAY), "--out", str(tmp_path / "o"), "--log", str(log))
    assert result.code in (0, 1), result.err
    assert result.err == []
