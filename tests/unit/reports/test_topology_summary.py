"""A summary with a staged path, single flight, SLOs and resources fits the summary model, its JSON
Schema and the path tree expectations are checked against."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from reports.summary_schema import Summary, summary_json_schema, summary_tree
from rollout_lab.cli import main
from tests.unit.reports.test_summary_schema import ROOT, _accepted, _scalars


def test_topology_blocks_fit_the_summary_model(tmp_path: Path) -> None:
    out = tmp_path / "run"
    settings = [
        "traffic.duration=8m",
        "traffic.users=800",
        "traffic.items=300",
        "cache.coalesce=true",
        'slos=[{name="fast", kind="latency", target=0.99, threshold_ms=50}]',
        "resources={overhead_mb=100}",
        "models.baseline.memory_mb=300",
    ]
    args = ["run", str(ROOT / "scenarios" / "slow_ranking_degrades.toml"), "--out", str(out)]
    args += ["--quiet", *[a for s in settings for a in ("--set", s)]]
    assert main(args) in (0, 1)
    document = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    summary = Summary.model_validate(document)
    jsonschema.validate(document, summary_json_schema())
    path = document["versions"]["candidate"]["serving_path"]
    assert [s["name"] for s in path["stages"]] == ["retrieval", "features", "ranking", "reranking"]
    assert path["degraded_answers"] > 0
    assert "single_flight" in document["cache"]
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
