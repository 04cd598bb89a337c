"""The shipped slate-log scenario: its data is what the example script writes, and its
replay recovers the click model the log was drawn from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rollout_lab.cli import main

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "scenarios" / "data" / "slate_log_sample.csv"


def test_shipped_slate_log_is_what_the_script_writes(tmp_path: Path) -> None:
    out = tmp_path / "slate_log_sample.csv"
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "make_slate_log.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    assert out.read_bytes() == DATA.read_bytes()
    assert (
        out.with_suffix(".truth.json").read_bytes() == DATA.with_suffix(".truth.json").read_bytes()
    )


def test_slate_log_replay_recovers_the_logs_click_model(tmp_path: Path) -> None:
    out = tmp_path / "run"
    scenario = ROOT / "scenarios" / "slate_log_replay.toml"
    assert main(["run", str(scenario), "--out", str(out), "--quiet", "--no-cache"]) == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    truth = json.loads(DATA.with_suffix(".truth.json").read_text(encoding="utf-8"))
    model = summary["off_policy"]["click_model"]
    theta = truth["examination"]
    for k, (low, high) in enumerate(model["examination_relative_ci95"]):
        assert low <= theta[k] / theta[0] <= high, (k, model["examination_relative_ci95"])
    logged = summary["off_policy"]["logged"]
    assert logged["slates"] == summary["off_policy"]["slates"]["slates"]
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "IPS − direct (p)" in page and "Logging policy, from the log" in page
    expectations = summary["verdict"]["expectations"]
    assert len(expectations) == 9 and all(e["passed"] for e in expectations)
