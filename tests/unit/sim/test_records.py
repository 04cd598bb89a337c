"""The per-request frame (``requests.parquet``): the ``degraded`` and ``coalesced`` columns
exist only when a run has stages or single flight, and say what the buffers hold."""

from __future__ import annotations

import numpy as np

from sim.records import FALLBACK, HIT, MISS, POPULAR, SERVED, Records

NAMES = ["baseline", "candidate"]


def _records() -> Records:
    records = Records(5)
    records.version[:] = [0, 1, 1, 0, 1]
    records.served_by[:] = [0, 1, 1, 1, POPULAR]
    records.result[:] = [SERVED, SERVED, SERVED, FALLBACK, FALLBACK]
    records.cache[:] = [HIT, MISS, MISS, MISS, MISS]
    records.degraded[:] = [-1, 2, 0, 1, -1]
    records.coalesced[:] = [False, False, True, False, False]
    return records


def _frame(records: Records, **kwargs: object) -> dict[str, list[object]]:
    n = records.n
    frame = records.to_frame(
        np.arange(n, dtype=np.float64),
        np.zeros(n, np.int64),
        np.zeros(n, np.int64),
        NAMES,
        **kwargs,  # type: ignore[arg-type]
    )
    return {c: frame[c].to_list() for c in frame.columns}


def test_plain_runs_keep_the_plain_columns() -> None:
    columns = _frame(_records())
    assert "degraded" not in columns and "coalesced" not in columns


def test_degraded_names_the_stage_of_the_path_that_served() -> None:
    # Only the candidate has a path; the baseline's row 3 was served by the candidate
    # (a fallback onto it), so it reads the candidate's stage names too.
    columns = _frame(_records(), stage_names={1: ["retrieval", "ranking", "reranking"]})
    assert columns["degraded"] == [None, "reranking", "retrieval", "ranking", None]
    both = _frame(_records(), stage_names={0: ["a", "b"], 1: ["x", "y", "z"]})
    assert both["degraded"] == [None, "z", "x", "y", None]


def test_coalesced_is_the_buffer() -> None:
    columns = _frame(_records(), coalesce=True)
    assert columns["coalesced"] == [False, False, True, False, False]
    assert "degraded" not in columns
