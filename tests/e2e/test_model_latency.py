"""The model's own latency (cache misses) beside end-to-end latency, and as a guardrail.

With a warm cache most requests are hits that cost ``hit_latency_ms``, so the end-to-end p50
is 1 ms for every version: a candidate five times slower at p50 looked the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from rollout_lab.cli import main

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.toml"
SETTINGS = {
    "traffic.duration": "20m",
    "traffic.users": "3000",
    "traffic.items": "600",
    "traffic.arrivals.mean_rate_per_s": "20",
    "serving.timeout_ms": "2000",  # no timeouts: every miss is answered by its model
    "rollout.weight": "30",
    "models.candidate.latency": '{ kind = "lognormal", p50_ms = 60, p99_ms = 300 }',
    "rollout.guardrails": "[]",
    "expect": "{}",
}
SLOW_CANDIDATE = [arg for key, value in SETTINGS.items() for arg in ("--set", f"{key}={value}")]


def _run(out: Path, *extra: str) -> dict[str, Any]:
    code = main(["run", str(QUICKSTART), "--out", str(out), "--quiet", *SLOW_CANDIDATE, *extra])
    assert code == 0
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return summary


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("slow")
    return out, _run(out, "--requests-parquet")


def test_end_to_end_p50_hides_a_five_times_slower_model(
    slow: tuple[Path, dict[str, Any]],
) -> None:
    _, summary = slow
    base, cand = summary["versions"]["baseline"], summary["versions"]["candidate"]
    # End to end both medians are the cache's hit latency...
    assert base["latency_ms"]["p50"] == cand["latency_ms"]["p50"] == 1.0
    # ...while the models' own medians differ about fivefold (service p50 12 ms vs 60 ms,
    # plus little queueing at this load).
    ratio = cand["model_latency_ms"]["p50"] / base["model_latency_ms"]["p50"]
    assert 3.5 < ratio < 6.5
    for block in (base, cand):
        model = block["model_latency_ms"]
        assert 0 < model["requests"] < block["requests"]
        assert model["p50"] <= model["p95"] <= model["p99"]


def test_model_latency_is_the_latency_of_answered_misses(
    slow: tuple[Path, dict[str, Any]],
) -> None:
    out, summary = slow
    frame = pl.read_parquet(out / "requests.parquet")
    answered = frame.filter(pl.col("model_answered"))
    assert set(answered["cache"].unique()) <= {"miss", "bypass"}
    assert set(answered["result"].unique()) == {"served"}
    assert frame.filter(pl.col("cache") == "hit")["model_answered"].sum() == 0
    for name, block in summary["versions"].items():
        mine = answered.filter(pl.col("version") == name)["latency_ms"].sort()
        assert block["model_latency_ms"]["requests"] == mine.len()
        # p50 by the inverted CDF: the smallest value with at least half the mass at or below.
        assert block["model_latency_ms"]["p50"] == pytest.approx(
            float(mine[(mine.len() + 1) // 2 - 1]), rel=1e-6
        )


def test_model_latency_guardrail_rolls_the_slow_model_back(tmp_path: Path) -> None:
    guard = '[{ metric = "model_latency_ms.p50", max_relative_to_baseline = 1.0 }]'
    summary = _run(tmp_path / "guard", "--set", f"rollout.guardrails={guard}")
    assert summary["outcome"] == "rolled_back"
    failed = [d for d in summary["decisions"] if d["reason"].startswith("fail:")]
    assert failed and "model_latency_ms.p50" in failed[0]["reason"]
