"""A run with a staged path, single flight, SLOs and resources: its summary fits the summary
model, its JSON Schema and the path tree expectations are checked against; its report shows
the topology sections after *Cache*, and the SLO budget of the update window agrees with a
direct computation on ``requests.parquet``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import polars as pl
import pytest

from reports.sections import SECTIONS
from reports.summary_schema import Summary, summary_json_schema, summary_tree
from reports.topology_sections import TOPOLOGY_SECTIONS, report_sections
from rollout_lab.cli import main
from sim import wording
from tests.unit.reports.test_summary_schema import ROOT, _accepted, _scalars

SETTINGS = [
    "traffic.duration=8m",
    "traffic.users=800",
    "traffic.items=300",
    "cache.coalesce=true",
    'slos=[{name="fast", kind="latency", target=0.99, threshold_ms=50}]',
    "resources={overhead_mb=100}",
    "models.baseline.memory_mb=300",
]


@pytest.fixture(scope="module")
def staged_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("topology") / "run"
    args = ["run", str(ROOT / "scenarios" / "slow_ranking_degrades.toml"), "--out", str(out)]
    args += ["--quiet", "--requests-parquet", *[a for s in SETTINGS for a in ("--set", s)]]
    assert main(args) in (0, 1)
    return out


def _summary(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return document


def test_topology_blocks_fit_the_summary_model(staged_run: Path) -> None:
    document = _summary(staged_run)
    summary = Summary.model_validate(document)
    jsonschema.validate(document, summary_json_schema())
    path = document["versions"]["candidate"]["serving_path"]
    assert [s["name"] for s in path["stages"]] == ["retrieval", "features", "ranking", "reranking"]
    assert path["degraded_answers"] > 0
    for stage in path["stages"]:
        if stage["completed"]:
            assert stage["sojourn_ms_p50"] <= stage["sojourn_ms_p95"] <= stage["sojourn_ms_p99"]
    flight = document["cache"]["single_flight"]
    assert sum(flight["by_version"].values()) == flight["coalesced"]
    assert document["slos"]["fast"]["requests"] == document["requests"]["arrivals"]
    # Footprints: declared, or (users + items) x factors x 4 bytes + the overhead.
    cost = document["resources"]["versions"]
    assert cost["baseline"]["footprint_gb"] == pytest.approx(300 / 1024, rel=1e-5)
    rows = document["data"]["users"] + document["data"]["items"]
    factors = document["versions"]["candidate"]["model"]["factors"]
    expected_gb = (rows * factors * 4 + 100 * 2**20) / 2**30
    assert cost["candidate"]["footprint_gb"] == pytest.approx(expected_gb, rel=1e-5)
    staged_replicas = 2 + 2 + 2 + 2  # the candidate's four stages, two replicas each
    assert cost["candidate"]["replicas"] == staged_replicas
    hours = (cost["candidate"]["to_s"] - cost["candidate"]["from_s"]) / 3600
    assert cost["candidate"]["replica_hours"] == pytest.approx(staged_replicas * hours, rel=1e-5)
    tree = summary_tree()
    versions = set(summary.versions)
    missing = [p for p, v in _scalars(document) if not _accepted(tree, p, v, versions)]
    assert missing == []


def test_slo_budget_per_window_and_update_window_match_the_requests(staged_run: Path) -> None:
    """Budget spent = bad / (1 - target) / n x span / period, recomputed from the per-request
    file for the update window and for every analysis window (the summary rounds to 6
    decimals)."""
    document = _summary(staged_run)
    slo = document["slos"]["fast"]
    frame = pl.read_parquet(staged_run / "requests.parquet")
    t = frame["t_s"].to_numpy()
    answered = frame["result"].is_in(["served", "fallback"]).to_numpy()
    bad = ~(answered & (frame["latency_ms"].to_numpy() <= 50.0))

    def spent(start: float, end: float) -> float:
        inside = (t >= start) & (t < end)
        n = int(inside.sum())
        rate = bad[inside].sum() / n / (1 - 0.99) if n else 0.0
        return float(rate * (end - start) / slo["period_s"])

    window = slo["update_window"]
    assert window["from_s"] == document["rollout"]["first_exposure_s"]
    assert window["to_s"] == document["scenario"]["settings"]["traffic"]["duration"]
    assert window["budget_spent"] == pytest.approx(
        spent(window["from_s"], window["to_s"]), abs=5e-7
    )
    starts, ends = document["windows"]["t_start_s"], document["windows"]["t_end_s"]
    assert len(slo["window_budget_spent"]) == len(starts) > 1
    expected = [spent(a, b) for a, b in zip(starts, ends, strict=True)]
    assert np.allclose(slo["window_budget_spent"], expected, rtol=0, atol=5e-7)


def test_requests_parquet_says_which_answers_were_degraded_or_coalesced(staged_run: Path) -> None:
    document = _summary(staged_run)
    frame = pl.read_parquet(staged_run / "requests.parquet")
    for name, version in document["versions"].items():
        mine = frame.filter(pl.col("served_by") == name)
        counts = dict(mine["degraded"].drop_nulls().value_counts().iter_rows())
        for stage in version["serving_path"]["stages"]:
            # Answers the path computed (misses, no cache); cache hits never hold a degraded
            # list (it is never cached).
            computed = mine.filter(pl.col("cache").is_in(["miss", "bypass"]))
            assert (
                computed.filter(pl.col("degraded") == stage["name"]).height
                == stage["degraded_first_here"]
            )
            assert counts.get(stage["name"], 0) == stage["degraded_first_here"]
    flight = document["cache"]["single_flight"]
    assert int(frame["coalesced"].sum()) == flight["coalesced"] > 0
    by_version = frame.filter(pl.col("coalesced"))["version"].value_counts()
    assert dict(by_version.iter_rows()) == {k: v for k, v in flight["by_version"].items() if v}


def test_report_shows_the_topology_sections_after_the_cache(staged_run: Path) -> None:
    document = _summary(staged_run)
    page = (staged_run / "report.html").read_text(encoding="utf-8")
    found = re.findall(r'<section id="([a-z]+)"><h2>([^<]+)</h2>', page)
    cache = [a for a, _ in SECTIONS].index("cache")
    assert found == [*SECTIONS[: cache + 1], *TOPOLOGY_SECTIONS, *SECTIONS[cache + 1 :]]
    assert found == report_sections(document)
    stages = page[page.index('<section id="stages">') : page.index('<section id="slos">')]
    path = document["versions"]["candidate"]["serving_path"]
    verdict = wording.degraded_share(path["degraded_answers"], path["answers"])
    assert f"candidate: {verdict}." in stages
    for head in ("p50 ms", "p95 ms", "p99 ms", "degraded first here"):
        assert f"<th>{head}</th>" in stages
    for stage in path["stages"]:
        assert f'<td class="l">{stage["name"]}</td>' in stages
    assert "<h3>Full and degraded answers</h3>" in stages
    slos = page[page.index('<section id="slos">') : page.index('<section id="resources">')]
    assert 'data-figure="slo-budget"' in slos
    slo = document["slos"]["fast"]
    assert wording.budget_burnt(slo["update_window"]["budget_spent"], "the update window") in slos
    assert wording.alerts_fired(slo["alerts_fired"], len(slo["alerts"])) in slos
    resources = page[page.index('<section id="resources">') :]
    assert "replica-hours" in resources and "GB-hours" in resources
    cache_section = page[page.index('<section id="cache">') : page.index('<section id="stages">')]
    assert "<h3>Single flight</h3>" in cache_section


def test_reports_without_the_features_keep_the_plain_sections() -> None:
    bare: dict[str, Any] = {"versions": {"a": {}, "b": {"serving_path": None}}, "slos": None}
    assert report_sections(bare) == list(SECTIONS)
    scaled = {"versions": {"a": {"autoscaler": {"timeline": [[0, 1]]}}}}
    assert ("resources", "Resources and cost") in report_sections(scaled)
    assert ("stages", "Serving path") not in report_sections(scaled)
