"""A summary with a staged path, single flight and SLOs fits the summary model, its JSON
Schema and the path tree expectations are checked against."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

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
    tree = summary_tree()
    versions = set(summary.versions)
    missing = [p for p, v in _scalars(document) if not _accepted(tree, p, v, versions)]
    assert missing == []
