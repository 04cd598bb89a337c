"""Replaying logs end to end: the shipped sample, and MovieLens in three file forms."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rollout_lab.cli import main

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "movielens_replay.toml"
MOVIELENS = Path(
    os.environ.get(
        "ROLLOUT_LAB_MOVIELENS", ROOT.parent / "shared/data/movielens-latest-small/ratings.csv"
    )
)


def _run(tmp_path: Path, name: str, *extra: str) -> dict:
    out = tmp_path / name
    code = main(["run", str(SCENARIO), "--out", str(out), "--quiet", "--reproducible", *extra])
    assert code == 0
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def test_shipped_sample_replays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the sample path is relative to the scenario file, not the cwd
    monkeypatch.delenv("ROLLOUT_LAB_MOVIELENS", raising=False)
    summary = _run(tmp_path, "sample")
    req = summary["requests"]
    assert req["arrivals"] == req["served"] + req["fallback"] + req["dropped"] > 1000
    assert summary["data"]["source"] == "log"


@pytest.mark.skipif(not MOVIELENS.exists(), reason="MovieLens latest-small not available")
def test_movielens_in_three_forms_gives_the_same_run(tmp_path: Path) -> None:
    ratings = pl.read_csv(MOVIELENS)
    udata = tmp_path / "u.data"
    ratings.select("userId", "movieId", "rating", "timestamp").write_csv(
        udata, separator="\t", include_header=False
    )
    inter = tmp_path / "ml.inter"
    ratings.rename(
        {
            "userId": "user_id:token",
            "movieId": "item_id:token",
            "rating": "rating:float",
            "timestamp": "timestamp:float",
        }
    ).write_csv(inter, separator="\t")
    csv = _run(tmp_path, "csv", "--log", str(MOVIELENS))
    assert csv["requests"]["arrivals"] > 10_000
    for name, path in (("udata", udata), ("inter", inter)):
        other = _run(tmp_path, name, "--log", str(path))
        assert other["requests"] == csv["requests"], name
        assert other["versions"]["candidate"]["ctr"] == csv["versions"]["candidate"]["ctr"], name


def test_missing_log_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["run", str(SCENARIO), "--out", str(tmp_path / "x"), "--log", str(tmp_path / "nope.csv")]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.csv" in err[0]


def test_unset_variable_in_log_path_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            str(SCENARIO),
            "--out",
            str(tmp_path / "x"),
            "--set",
            'traffic.log.path="${ROLLOUT_LAB_NOT_SET_ANYWHERE}/r.csv"',
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "ROLLOUT_LAB_NOT_SET_ANYWHERE" in err and "--log" in err


def test_train_then_run_by_registry_id_on_a_replayed_log_is_the_same_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``rollout-lab train`` on the shipped sample, then ``run`` with both versions by id:
    the warm-started candidate loaded from the registry is calibrated as it was when trained
    in the run (its parent's calibrator), so the summary is the same, byte for byte."""
    monkeypatch.delenv("ROLLOUT_LAB_MOVIELENS", raising=False)
    registry = str(tmp_path / "registry")
    assert main(["train", str(SCENARIO), "--registry", registry]) == 0
    ids = [
        line.split()[0] for line in capsys.readouterr().out.splitlines() if "@" in line.split()[0]
    ]
    assert [i.split("@")[0] for i in ids] == ["baseline", "candidate"]
    trained = _run(tmp_path, "trained", "--registry", registry)
    loaded = _run(
        tmp_path,
        "loaded",
        "--registry", registry,
        "--set", f'models.baseline={{registry="{ids[0]}"}}',
        "--set", f'models.candidate={{registry="{ids[1]}"}}',
    )  # fmt: skip
    trained.pop("scenario"), loaded.pop("scenario")
    assert json.dumps(trained, sort_keys=True) == json.dumps(loaded, sort_keys=True)
    candidate = loaded["versions"]["candidate"]["model"]
    assert candidate["registry_id"] == ids[1] and candidate["provenance"]["parent_id"] == ids[0]


def test_log_whose_users_consumed_every_item_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every user rates all four items before the update window: the versions' lists there
    are empty, so no click probability can be fitted (it was an internal-looking message)."""
    rng = np.random.default_rng(1)
    rows, t = ["userId,movieId,rating,timestamp"], 1_000_000
    for user in range(1, 61):
        for item in range(1, 5):
            t += int(rng.integers(1, 10))
            rows.append(f"{user},{item},4.0,{t}")
    for _ in range(200):
        t += int(rng.integers(10, 50))
        rows.append(f"{rng.integers(1, 61)},{rng.integers(1, 5)},4.0,{t}")
    log = tmp_path / "all_seen.csv"
    log.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "x"
    code = main(
        ["run", str(SCENARIO), "--out", str(out), "--log", str(log), "--set", "users.list_size=3"]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "calibration" in err[0] and "consumed every item" in err[0]
    assert not out.exists()
