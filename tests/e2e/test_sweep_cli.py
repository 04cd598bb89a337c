"""``rollout-lab sweep`` as a user meets it: one-line errors, failed replications, Ctrl-C."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from lab.pipeline import Prepared, RunResult, simulate_prepared
from lab.sweep import run_task
from rollout_lab.cli import main
from rollout_lab.commands import sweep as sweep_command

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "good_candidate_promoted.toml"
SMALL = [
    "--set",
    "traffic.duration=20m",
    "--set",
    "traffic.users=2000",
    "--set",
    "traffic.items=400",
]

BAD = [
    (["--grid", "rollout.weight"], "--grid expects dotted.path=v1,v2,..., got 'rollout.weight'"),
    (["--grid", "rollout.weight=5,,10"], "--grid rollout.weight: value 2 is empty"),
    (["--grid", "seed=1,2"], "--grid seed: the seed is not a grid setting"),
    (
        ["--grid", "rollout.weight=5,150"],
        "good_candidate_promoted.toml: rollout.weight must be in [0, 100], got 150 "
        "(grid point 1: rollout.weight=150)",
    ),
    (
        ["--grid", "rollout.wieght=5"],
        "good_candidate_promoted.toml: rollout.wieght is not a known setting",
    ),
    (["--grid", "rollout.weight=5", "--seeds", "0"], "--seeds must be at least 1, got 0"),
    (["--workers", "0"], "--workers must be at least 1, got 0"),
]


@pytest.mark.parametrize(("options", "message"), BAD)
def test_bad_grid_or_options_exit_2_with_one_line(
    options: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeds = [] if "--seeds" in options else ["--seeds", "2"]
    code = main(["sweep", str(SCENARIO), *seeds, *options, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"rollout-lab: error: {message}")
    assert err.count("\n") == 1
    assert not (tmp_path / "o").exists()  # nothing started


def test_an_earlier_sweep_is_not_overwritten_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sweep.json").write_text("{}", encoding="utf-8")
    code = main(["sweep", str(SCENARIO), "--seeds", "1", "--out", str(tmp_path), *SMALL])
    assert code == 2
    assert "holds an earlier sweep (pass --force" in capsys.readouterr().err


def fails_on_replication_one(prepared: Prepared, replication: int) -> RunResult:
    """A replication function that raises for replication 1 (imported by pool workers)."""
    if replication == 1:
        raise RuntimeError("injected fault")
    return simulate_prepared(prepared, replication)


class _FaultyPool(sweep_command.ProcessPoolRunner):
    def __init__(self, workers: int) -> None:
        super().__init__(workers, functools.partial(run_task, replicate=fails_on_replication_one))


def test_a_failing_replication_is_reported_and_the_rest_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sweep_command, "ProcessPoolRunner", _FaultyPool)
    code = main(
        [
            "sweep",
            str(SCENARIO),
            "--grid",
            "rollout.weight=10,50",
            "--seeds",
            "2",
            "--workers",
            "2",
            "--out",
            str(tmp_path),
            "--quiet",
            *SMALL,
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    summary = json.loads((tmp_path / "sweep.json").read_text(encoding="utf-8"))
    seeds = [p["seed"] for p in summary["points"]]
    for point, weight in enumerate([10, 50]):
        assert (
            f"replication failed: point {point} (rollout.weight={weight}) replication 1 "
            f"seed {seeds[point]}: RuntimeError: injected fault"
        ) in err
    assert summary["complete"] is True
    assert summary["counts"] == {"planned": 4, "finished": 4, "ok": 2, "failed": 2, "missing": 0}
    table = pl.read_parquet(tmp_path / "sweep.parquet")
    assert table["status"].to_list() == ["ok", "failed"] * 2
    assert table["outcome"].null_count() == 2
    page = (tmp_path / "sweep.html").read_text(encoding="utf-8")
    assert "2 of 4 replications failed" in page and "RuntimeError: injected fault" in page


def test_sigterm_keeps_finished_results_marked_incomplete(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    command = [
        sys.executable,
        "-m",
        "rollout_lab.cli",
        "sweep",
        str(SCENARIO),
        "--seeds",
        "40",
        "--workers",
        "1",
        "--chunk-size",
        "1",
        "--out",
        str(out),
        "--quiet",
        *SMALL,
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not list((out / "parts").glob("*.parquet")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no replication finished within 120 s"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        _stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143, stderr
    assert "sweep stopped by SIGTERM; the finished replications are written" in stderr
    summary = json.loads((out / "sweep.json").read_text(encoding="utf-8"))
    assert summary["complete"] is False and summary["interrupted"] is True
    finished = summary["counts"]["finished"]
    assert 1 <= finished < 40
    assert summary["counts"]["missing"] == 40 - finished
    table = pl.read_parquet(out / "sweep.parquet")
    assert table.height == finished
    assert table["replication"].to_list() == sorted(table["replication"].to_list())
    page = (out / "sweep.html").read_text(encoding="utf-8")
    assert "<b>Incomplete sweep</b> (interrupted)" in page
    # The parts stay beside the table of an incomplete sweep.
    assert len(list((out / "parts").glob("*.parquet"))) == finished
