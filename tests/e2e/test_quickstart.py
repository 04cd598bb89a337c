"""The quick start end to end, at a reduced scale, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from rollout_lab.cli import main

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.toml"
SMALL = [
    "--set",
    "traffic.duration=20m",
    "--set",
    "traffic.users=3000",
    "--set",
    "traffic.items=600",
    "--set",
    "traffic.arrivals.mean_rate_per_s=20",
]


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("quickstart")
    code = main(
        ["run", str(QUICKSTART), "--out", str(out), "--force", "--requests-parquet", *SMALL]
    )
    assert code == 0
    return out


def test_writes_report_summary_and_junit(quickstart_run: Path) -> None:
    for name in ("report.html", "summary.json", "junit.xml", "requests.parquet"):
        assert (quickstart_run / name).stat().st_size > 0, name
    page = (quickstart_run / "report.html").read_text(encoding="utf-8")
    # Figures are inline SVG with their text kept as text (no raster images).
    assert page.count("<svg") >= 4
    assert '<img src="data:image/png' not in page
    for title in ("Traffic share", "Latency percentiles", "Cache hit rate", "CTR by version"):
        assert title in page
    assert "http://" not in page and "https://" not in page


def test_accounting_invariant(quickstart_run: Path) -> None:
    summary = json.loads((quickstart_run / "summary.json").read_text(encoding="utf-8"))
    req = summary["requests"]
    assert req["arrivals"] > 10_000
    assert req["arrivals"] == req["served"] + req["fallback"] + req["dropped"]
    frame = pl.read_parquet(quickstart_run / "requests.parquet")
    assert frame.height == req["arrivals"]
    assert set(frame["result"].unique()) <= {"served", "fallback", "dropped"}
    per_version = sum(v["requests"] for v in summary["versions"].values())
    assert per_version == req["arrivals"]


def test_summary_schema(quickstart_run: Path) -> None:
    summary = json.loads((quickstart_run / "summary.json").read_text(encoding="utf-8"))
    assert summary["schema_version"] == 1
    assert summary["scenario"]["name"] == "quickstart"
    assert summary["scenario"]["settings"]["traffic"]["duration"] == 1200.0
    for name in ("baseline", "candidate"):
        block = summary["versions"][name]
        assert block["requests"] > 0
        assert (
            0
            < block["latency_ms"]["p50"]
            <= block["latency_ms"]["p95"]
            <= block["latency_ms"]["p99"]
        )
        assert 0 <= block["cache_hit_rate"] <= 1
        assert 0 < block["ctr"] < 1
    assert summary["versions"]["candidate"]["model"]["update"] == "warm_start"
    assert summary["decisions"][0]["action"] in ("mirror", "set_weight")
    assert {"wall_s", "sim_s", "requests_per_wall_s"} <= set(summary["timing"])
    # The canary weight is 10%: the candidate's share of users must be near it.
    cand_users = summary["versions"]["candidate"]["users"]
    base_users = summary["versions"]["baseline"]["users"]
    assert 0.05 < cand_users / (cand_users + base_users) < 0.15


def test_reproducible_keeps_report_s_and_never_prints_a_zero_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r"
    assert main(["run", str(QUICKSTART), "--out", str(out), "--reproducible", *SMALL]) == 0
    console = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["timing"]["report_s"] == 0.0  # the schema promises the key
    first = console.splitlines()[0]
    assert " 0 simulated requests per wall second" not in first
    assert "wall-clock timings not recorded with --reproducible" in first
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "(0 requests per wall second)" not in page
    assert "wall-clock timings not recorded (--reproducible)" in page


def test_stale_rate_is_null_without_a_cache(tmp_path: Path) -> None:
    out = tmp_path / "nocache"
    args = ["run", str(QUICKSTART), "--out", str(out), "--quiet", *SMALL]
    # Exit 1: the quick start expects a cache hit rate above 0.3, which null is not.
    assert main([*args, "--set", "cache.enabled=false", "--set", "traffic.duration=5m"]) == 1
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    for block in summary["versions"].values():
        assert block["requests"] > 0
        assert block["cache_hit_rate"] is None and block["stale_rate"] is None


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert (
            main(["run", str(QUICKSTART), "--out", str(out), "--reproducible", "--quiet", *SMALL])
            == 0
        )
        outs.append((out / "summary.json").read_bytes())
    assert outs[0] == outs[1]
    out = tmp_path / "c"
    assert (
        main(
            [
                "run",
                str(QUICKSTART),
                "--out",
                str(out),
                "--reproducible",
                "--quiet",
                "--seed",
                "8",
                *SMALL,
            ]
        )
        == 0
    )
    assert (out / "summary.json").read_bytes() != outs[0]


def test_refuses_to_overwrite_without_force(
    quickstart_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(QUICKSTART), "--out", str(quickstart_run), *SMALL]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--force" in err[0]


def test_missing_file_exits_2_with_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rollout_lab.cli", "run", str(tmp_path / "nope.toml")],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        f"rollout-lab: error: {tmp_path / 'nope.toml'}: no such scenario file (check the path)"
    ]
    assert "Traceback" not in proc.stderr


def test_bad_override_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(QUICKSTART), "--set", "rollout.weight=150"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "rollout-lab: error: quickstart.toml: rollout.weight must be in [0, 100], got 150"


def test_failing_expectation_exits_1(tmp_path: Path) -> None:
    code = main(
        [
            "run",
            str(QUICKSTART),
            "--out",
            str(tmp_path / "f"),
            "--quiet",
            *SMALL,
            "--set",
            'expect."versions.candidate.latency_ms.p99"="< 0.001"',
        ]
    )
    assert code == 1
    junit = (tmp_path / "f" / "junit.xml").read_text(encoding="utf-8")
    assert "<failure" in junit and "versions.candidate.latency_ms.p99" in junit


def test_unknown_expectation_metric_is_a_scenario_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            str(QUICKSTART),
            "--out",
            str(tmp_path / "u"),
            "--quiet",
            *SMALL,
            "--set",
            'expect."versions.candidate.latency_ms.p999"="< 1"',
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "rollout-lab: error: quickstart.toml: expect.versions.candidate.latency_ms.p999 names no "
        "metric: 'p999' is not in versions.candidate.latency_ms (known: mean, p50, p95, p99)"
    )
