"""The Open Bandit Dataset's layout as a log (``format = "obd"``): read, replayed, refused.

A small file in the OBD layout written here runs offline; the real sample from the ``obp``
wheel (``tests.helpers_obd``) runs when the registry can be reached.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from replay.logs import LogSpec, detect_format, read_log
from rollout_lab.cli import main
from tests.helpers_obd import obd_sample

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "movielens_replay.toml"


def write_obd(path: Path, *, rows: int = 3_000, items: int = 80, seed: int = 1) -> pl.DataFrame:
    """A file in the OBD layout: an unnamed index, ISO times with a zone, 1-based positions,
    a uniform random logging policy over ``items`` (propensity 1 / items), two hashed-looking
    user features (60 profiles) and two affinity columns the reader ignores."""
    rng = np.random.default_rng(seed)
    start = datetime(2019, 11, 24, tzinfo=UTC)
    seconds = np.sort(rng.uniform(0, 7 * 86_400, rows))
    profile = rng.integers(0, 60, rows)
    frame = pl.DataFrame(
        {
            "": np.arange(rows),
            "timestamp": [str(start + timedelta(seconds=float(s))) for s in seconds],
            "item_id": rng.integers(0, items, rows),
            "position": rng.integers(1, 4, rows),
            "click": (rng.random(rows) < 0.05).astype(np.int64),
            "propensity_score": np.full(rows, 1 / items),
            "user_feature_0": [f"{p % 4:032x}" for p in profile],
            "user_feature_1": [f"{(p // 4) + 100:032x}" for p in profile],
            "user-item_affinity_0": rng.random(rows).round(3),
            "user-item_affinity_1": rng.random(rows).round(3),
        }
    )
    frame.write_csv(path)
    return frame


def _run(tmp_path: Path, log: Path, *extra: str) -> tuple[int, Path]:
    out = tmp_path / "run"
    code = main(
        [
            "run",
            str(SCENARIO),
            "--out",
            str(out),
            "--log",
            str(log),
            "--set",
            "users.list_size=3",
            "--set",
            "metrics.noise_floor=false",
            "--no-cache",
            *extra,
        ]
    )
    return code, out


def _one_line_exit_2(capsys: pytest.CaptureFixture[str], code: int, *words: str) -> None:
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def test_obd_layout_is_detected_and_every_row_is_an_event(tmp_path: Path) -> None:
    log = tmp_path / "all.csv"
    frame = write_obd(log)
    assert detect_format(log) == "obd"
    table = read_log(LogSpec(log))
    # A user is a profile of the user features: 60 profiles, 60 users.
    assert table.n_users == 60 and table.n_items == 80
    assert table.accounting["input_rows"] == table.accounting["kept"] == frame.height
    events = table.events["event"].value_counts().sort("event")
    assert events["event"].to_list() == ["click", "impression"]
    assert events["count"].to_list() == [frame["click"].sum(), frame.height - frame["click"].sum()]


def test_obd_log_replays_with_its_propensities_positions_and_clicks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "all.csv"
    frame = write_obd(log)
    code, out = _run(tmp_path, log, "--log-format", "obd")
    assert code in (0, 1)
    console = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["data"]["format"] == "obd"
    table = summary["data"]["accounting"]
    assert table["kept"] == table["input_rows"] == 3_000
    block = summary["off_policy"]
    accounting = block["accounting"]
    # Every replay-window row is used or counted under a reason.
    assert accounting["kept"] + sum(accounting["excluded"].values()) == accounting["rows_in_window"]
    assert accounting["kept"] == block["rows"] == accounting["rows_in_window"] > 400
    assert block["slates"]["positions"] == 3 and block["click_model"] is not None
    assert block["target_policy"].startswith("the version's ranking")
    for version in block["versions"].values():
        assert version["rows"] + sum(version["excluded"].values()) == block["rows"]
    # The logging policy's engagement and exposure are the log's rows of the replay window
    # (the last 20 % of its span), counted here straight from the file.
    ts = frame["timestamp"].str.to_datetime(time_zone="UTC").dt.epoch("us").to_numpy()
    window = frame.filter(ts >= ts.min() + 0.8 * (ts.max() - ts.min()))
    logged = block["logged"]
    assert logged["impressions"] == window.height == block["rows"]
    assert logged["clicks"] == window["click"].sum()
    assert logged["ctr"] == pytest.approx(window["click"].mean(), abs=1e-6)
    assert logged["ctr_ci95"][0] < logged["ctr"] < logged["ctr_ci95"][1]
    assert logged["exposure"]["items_shown"] == window["item_id"].n_unique()
    for cell in logged["by_position"]:
        at = window.filter(pl.col("position") == cell["position"] + 1)
        assert (cell["impressions"], cell["clicks"]) == (at.height, at["click"].sum())
        # The position-based model fitted on these rows predicts each position's CTR within
        # the observed rate's interval.
        assert cell["ctr_ci95"][0] < cell["click_model_ctr"] < cell["ctr_ci95"][1]
    # Console and report say which CTR is the log's and which the simulated model's.
    assert "simulated by the click model" in console and "logged CTR" in console
    assert f"{100 * logged['ctr']:.2f}%" in console and "click model fitted from the log" in console
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Logging policy, from the log" in page and "logged CTR [95% CI]" in page


@pytest.mark.parametrize(
    ("drop", "named"),
    [
        ("click", "'click'"),
        ("propensity_score", "'propensity_score'"),
        ("user_feature_*", "user_feature_*"),
    ],
)
def test_obd_file_missing_a_column_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], drop: str, named: str
) -> None:
    log = tmp_path / "all.csv"
    frame = write_obd(log, rows=200)
    frame.drop(pl.selectors.starts_with(drop.rstrip("*"))).write_csv(log)
    code, out = _run(tmp_path, log, "--log-format", "obd")
    _one_line_exit_2(capsys, code, "all.csv", "Open Bandit Dataset", named)
    assert not out.exists()


@pytest.mark.parametrize("bad", [0.0, 1.5, -0.1])
def test_propensity_outside_zero_one_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: float
) -> None:
    log = tmp_path / "all.csv"
    frame = write_obd(log, rows=500)
    propensity = frame["propensity_score"].to_numpy().copy()
    propensity[17] = bad
    frame.with_columns(pl.Series("propensity_score", propensity)).write_csv(log)
    code, out = _run(tmp_path, log, "--log-format", "obd")
    _one_line_exit_2(capsys, code, "all.csv", "'propensity_score'", "(0, 1]", "data row 18")
    assert not out.exists()


def test_obd_format_with_a_column_mapping_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "all.csv"
    write_obd(log, rows=200)
    code, out = _run(
        tmp_path,
        log,
        "--log-format",
        "obd",
        "--set",
        'traffic.log.columns={ user = "user_feature_0", item = "item_id" }',
    )
    _one_line_exit_2(capsys, code, "traffic.log.columns", 'format = "obd"')
    assert not out.exists()


def test_open_bandit_sample_is_read_whole() -> None:
    table = read_log(LogSpec(obd_sample()))
    # 10,000 rows, 80 items; 240 profiles of the four user features.
    assert table.accounting["input_rows"] == table.accounting["kept"] == 10_000
    assert table.n_items == 80 and table.n_users == 240
    assert int((table.events["event"] == "click").sum()) == 38
