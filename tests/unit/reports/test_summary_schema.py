"""The JSON Schemas of scenario files and of summary.json, from the pydantic models.

Every shipped scenario validates against the scenario schema (through ``jsonschema``, as an
editor or another program would use it), ``rollout-lab schema`` prints both, and the summary
schema's path tree names every scalar of a real summary.  Summaries of every shipped scenario
are validated by ``tests/e2e/test_scenario_library.py`` (which runs them all at a small
scale) through the session-wide check in ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from reports.summary_schema import LEAF, OPEN, VERSIONS, Summary, summary_json_schema, summary_tree
from rollout_lab.cli import main
from rollout_lab.commands.schema import scenario_json_schema

ROOT = Path(__file__).resolve().parents[3]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_shipped_scenario_fits_the_scenario_schema(path: Path) -> None:
    document = tomllib.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(document, scenario_json_schema())


def test_the_scenario_schema_refuses_what_the_loader_refuses() -> None:
    schema = scenario_json_schema()
    document = tomllib.loads((ROOT / "scenarios" / "quickstart.toml").read_text("utf-8"))
    document["rollout"]["policy"] = "yolo"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)
    document["rollout"]["policy"] = "canary"
    document["traffic"]["unknown_key"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)


@pytest.mark.parametrize("kind", ["scenario", "summary"])
def test_schema_command_prints_a_json_schema(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", kind]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object" and "properties" in schema


def _scalars(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _scalars(v, f"{path}.{k}" if path else k)]
    return [(path, node)]


def _accepted(tree: Any, path: str, value: Any, versions: set[str]) -> bool:
    node = tree
    for part in path.split("."):
        if node == OPEN:
            return True
        if node == LEAF:
            return False
        node = node.get(part) or (node.get(VERSIONS) if part in versions else None)
        if node is None:
            return False
    # A table that is null in this summary (no projection, no releases) is still a table.
    return node in (LEAF, OPEN) or (value is None and isinstance(node, dict))


def test_summary_model_and_tree_cover_a_real_summary(tmp_path: Path) -> None:
    out = tmp_path / "run"
    small = ["traffic.duration=6m", "traffic.users=600", "traffic.items=200"]
    args = ["run", str(ROOT / "scenarios" / "release_train.toml"), "--out", str(out), "--quiet"]
    args += [a for s in small for a in ("--set", s)]
    args += ["--set", "release_train.every=2m"]
    assert main(args) in (0, 1)
    document = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    summary = Summary.model_validate(document)
    jsonschema.validate(document, summary_json_schema())
    tree = summary_tree()
    versions = set(summary.versions)
    missing = [p for p, v in _scalars(document) if not _accepted(tree, p, v, versions)]
    assert missing == []
    broken = dict(document, unexpected=1)
    with pytest.raises(ValueError):
        Summary.model_validate(broken)
