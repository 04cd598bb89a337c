"""The broken-log corpus: every file either fails with one actionable line or is read with
exact per-reason skip counts, and the row accounting always adds up."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from replay.errors import UserInputError
from replay.logs import LogSpec, read_log
from replay.validation import SKIP_REASONS, check_accounting

CORPUS = Path(__file__).parent / "broken_logs"


@dataclass(frozen=True)
class Case:
    file: str
    error: tuple[str, ...] = ()  # substrings the one-line message must contain
    counts: dict[str, int] = field(default_factory=dict)  # input_rows, kept, skip reasons
    spec: dict[str, object] = field(default_factory=dict)


CASES = [
    Case(
        "ratings_semicolon.csv",
        error=(
            "is missing",
            "userId;movieId;rating;timestamp as one column",
            "traffic.log.delimiter = ';'",
        ),
    ),
    Case("empty.csv", error=("empty file (0 bytes",)),
    Case("blank_lines.csv", error=("empty file (only blank lines",)),
    Case("header_only.csv", error=("at least one data row", "found columns user, item, ts")),
    Case(
        "no_timestamp_column.csv",
        error=(
            "column for the timestamp",
            "found user, item, rating",
            "traffic.log.columns = { timestamp =",
        ),
    ),
    Case(
        "all_bad_timestamps.csv",
        error=(
            "none of 3",
            "null_timestamp=1, bad_timestamp=2",
            "column 'ts' holds 'yesterday'",
            "timestamp_unit",
        ),
    ),
    Case(
        "only_views.ndjson",
        error=("unknown_event_type=2", "column 'event' holds 'view'", "event_types"),
        spec={"event_types": frozenset({"click"})},
    ),
    Case("truncated.ndjson", error=("must be NDJSON", "Syntax")),
    Case("not_really.parquet", error=("must be Parquet", "PAR1")),
    Case("u_commas.data", error=("4 '\\t'-separated fields", "looks ','-separated")),
    Case("ragged.csv", error=("more fields", "quote values")),
    Case("unknown_format.xyz", error=("format must be recognisable", "'.xyz'", "format=")),
    Case("latin1.csv", error=("must be UTF-8 text", "iconv")),
    Case("does_not_exist.csv", error=("must exist", "no such file")),
    Case(
        "null_ids.csv",
        counts={"input_rows": 5, "kept": 2, "null_user": 2, "null_item": 1},
    ),
    Case(
        "bad_timestamps.csv",
        counts={"input_rows": 8, "kept": 2, "null_timestamp": 1, "bad_timestamp": 5},
    ),
    Case("iso_zones.csv", counts={"input_rows": 5, "kept": 3, "bad_timestamp": 2}),
    Case(
        "weights.csv",
        counts={"input_rows": 8, "kept": 2, "non_finite_weight": 5, "negative_weight": 1},
    ),
    Case("duplicates.csv", counts={"input_rows": 5, "kept": 3, "duplicate": 2}),
    Case(
        "events.ndjson",
        counts={"input_rows": 5, "kept": 3, "unknown_event_type": 2},
        spec={"event_types": frozenset({"click", "view"})},
    ),
    Case(
        "mixed_rows.inter",
        counts={
            "input_rows": 5,
            "kept": 2,
            "null_user": 1,
            "bad_timestamp": 1,
            "negative_weight": 1,
        },
    ),
    Case(
        "mixed_types.ndjson",
        counts={"input_rows": 4, "kept": 2, "null_user": 1, "bad_timestamp": 1},
    ),
    Case("ratings.csv", counts={"input_rows": 3, "kept": 2, "non_finite_weight": 1}),
]


def test_corpus_is_covered() -> None:
    on_disk = {path.name for path in CORPUS.iterdir()}
    listed = {case.file for case in CASES}
    assert on_disk <= listed, f"corpus files without an expectation: {on_disk - listed}"
    assert len(on_disk) >= 15


@pytest.mark.parametrize("case", CASES, ids=[case.file for case in CASES])
def test_broken_log(case: Case) -> None:
    path = CORPUS / case.file
    spec = LogSpec(path, **case.spec)  # type: ignore[arg-type]
    if case.error:
        with pytest.raises(UserInputError) as caught:
            read_log(spec)
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith(f"{path}: ")
        for part in case.error:
            assert part in message, message
        return
    table = read_log(spec)
    expected = {"input_rows": case.counts["input_rows"], "kept": case.counts["kept"]}
    expected |= {f"skipped.{r}": case.counts.get(r, 0) for r in SKIP_REASONS}
    assert table.accounting == expected
    check_accounting(table.accounting)
    assert table.events.height == table.accounting["kept"]
