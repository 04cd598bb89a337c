"""The same sweep on every engine gives the same bytes: process pool at 1 and 2 workers, Dask.

A 2-value grid x 2 replications of ``good_candidate_promoted.toml`` at a small scale, through
the real CLI with ``--reproducible`` (wall-clock times written as 0).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from rollout_lab.cli import main

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "good_candidate_promoted.toml"
SWEEP = [
    "sweep",
    str(SCENARIO),
    "--grid",
    "rollout.weight=10,50",
    "--seeds",
    "2",
    "--set",
    "traffic.duration=20m",
    "--set",
    "traffic.users=2000",
    "--set",
    "traffic.items=400",
    "--reproducible",
    "--quiet",
]


def _sweep(out: Path, *options: str) -> Path:
    assert main([*SWEEP, "--out", str(out), *options]) == 0
    return out


def _without_execution(path: Path) -> dict[str, Any]:
    summary = json.loads((path / "sweep.json").read_text(encoding="utf-8"))
    summary.pop("execution")
    return summary  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _sweep(tmp_path_factory.mktemp("pool1"), "--workers", "1")


def test_outputs(one_worker: Path) -> None:
    table = pl.read_parquet(one_worker / "sweep.parquet")
    assert table.select("point", "rollout.weight", "replication").rows() == [
        (0, 10, 0),
        (0, 10, 1),
        (1, 50, 0),
        (1, 50, 1),
    ]
    assert table["status"].to_list() == ["ok"] * 4
    assert table["wall_s"].to_list() == [0.0] * 4
    summary = json.loads((one_worker / "sweep.json").read_text(encoding="utf-8"))
    assert summary["complete"] is True
    assert summary["counts"] == {"planned": 4, "finished": 4, "ok": 4, "failed": 0, "missing": 0}
    assert summary["execution"]["engine"] == "process-pool"
    grids = [b["grid"] for b in summary["points"]]
    assert grids == [{"rollout.weight": 10}, {"rollout.weight": 50}]
    page = (one_worker / "sweep.html").read_text(encoding="utf-8")
    assert "All 4 replications finished." in page and "<script" not in page
    assert not (one_worker / "parts").exists()  # a complete sweep needs no parts


def test_two_workers_give_the_same_bytes(one_worker: Path, tmp_path: Path) -> None:
    two = _sweep(tmp_path, "--workers", "2")
    summary = json.loads((two / "sweep.json").read_text(encoding="utf-8"))
    assert summary["execution"]["workers"] == 2 and summary["execution"]["tasks"] == 4
    assert (two / "sweep.parquet").read_bytes() == (one_worker / "sweep.parquet").read_bytes()
    assert _without_execution(two) == _without_execution(one_worker)


def test_a_local_dask_cluster_gives_the_same_bytes(one_worker: Path, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    dask = _sweep(tmp_path, "--dask-local", "--workers", "2")
    summary = json.loads((dask / "sweep.json").read_text(encoding="utf-8"))
    assert summary["execution"]["engine"] == "dask-local"
    assert (dask / "sweep.parquet").read_bytes() == (one_worker / "sweep.parquet").read_bytes()
    assert _without_execution(dask) == _without_execution(one_worker)
