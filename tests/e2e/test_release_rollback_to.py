"""A release train whose rollbacks return production to a named registered version.

Three releases on a small world: the first two are promoted, the third is slow and rolled
back.  Without ``release_train.rollback_to`` production stays on release 2; naming release
1's registry id sends production back to that exact version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_checks import one_line_exit_2

from rollout_lab.cli import main

SCENARIO = """\
name = "release-train-rollback-to"
seed = 24
registry = "registry"

[traffic]
duration = "90m"
users = 2000
items = 500
arrivals = { kind = "poisson", rate_per_s = 20 }

[models.baseline]
[models.candidate]
parent = "baseline"
update = "warm_start"
click_lift = 0.2

[release_train]
every = "30m"
count = 3

[rollout]
policy = "staged"
steps = [{ set_weight = 20 }, { pause = "20m" }, { set_weight = 100 }]
analysis = { interval = "5m", failure_limit = 2, min_requests = 100 }
guardrails = [{ metric = "latency_ms.p99", max = 120 }]

[metrics]
noise_floor = false

# The third release is six times slower from its start: rolled back at its second analysis.
[[faults]]
kind = "latency_spike"
version = "candidate-3"
at = "60m"
length = "30m"
factor = 6
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The scenario file and the registry ids ``rollout-lab train`` gave its two versions."""
    folder = tmp_path_factory.mktemp("rollback-to")
    scenario = folder / "train.toml"
    scenario.write_text(SCENARIO)
    assert main(["train", str(scenario), "--registry", str(folder / "registry")]) == 0
    ids = sorted(
        f"{name.name}@{tag.name}"
        for name in (folder / "registry").iterdir()
        for tag in name.iterdir()
    )
    assert [i.split("@")[0] for i in ids] == ["baseline", "candidate"]
    return scenario, ids


def _run(scenario: Path, ids: list[str], out: Path, *extra: str) -> int:
    return main(
        [
            "run", str(scenario), "--out", str(out), "--reproducible", "--quiet",
            "--set", f'models.baseline={{registry="{ids[0]}"}}',
            "--set", f'models.candidate={{registry="{ids[1]}"}}',
            *extra,
        ]
    )  # fmt: skip


def _summary(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "summary.json").read_text()))


def test_the_third_release_rolls_back_to_the_first_by_registry_id(
    trained: tuple[Path, list[str]], tmp_path: Path
) -> None:
    scenario, ids = trained
    first = ids[1]  # release 1 is the registered candidate
    assert _run(scenario, ids, tmp_path / "stays") == 0
    back = ("--set", f'release_train.rollback_to="{first}"')
    assert _run(scenario, ids, tmp_path / "back", *back) == 0
    stays, returned = _summary(tmp_path / "stays"), _summary(tmp_path / "back")
    outcomes = [(r["version"], r["outcome"]) for r in returned["releases"]]
    assert outcomes == [
        ("candidate", "promoted"),
        ("candidate-2", "promoted"),
        ("candidate-3", "rolled_back"),
    ]
    # Without a target production stays on release 2; with one it is release 1 again.
    assert stays["rollout"]["production"] == "candidate-2"
    assert stays["releases"][2]["restored"] is None
    assert returned["rollout"]["production"] == "candidate"
    assert returned["releases"][2]["restored"] == "candidate"
    assert returned["routing"]["baseline"] == "candidate"
    assert returned["routing"]["share"] == {"candidate": 1.0}
    assert returned["versions"]["candidate"]["model"]["registry_id"] == first
    rollback = next(d for d in returned["decisions"] if d["action"] == "rollback")
    assert rollback["release"] == 3 and "production returns to candidate" in rollback["reason"]
    # The same requests, served by release 1 instead of release 2 after the rollback.
    served_stays, served_back = stays["served"], returned["served"]
    moved = served_back["candidate"]["requests"] - served_stays["candidate"]["requests"]
    assert moved > 0
    assert served_stays["candidate-2"]["requests"] - served_back["candidate-2"]["requests"] == (
        pytest.approx(moved, abs=5)
    )
    assert served_back["candidate-3"] == served_stays["candidate-3"]
    report = (tmp_path / "back" / "report.html").read_text(encoding="utf-8")
    assert "rolled_back → candidate" in report
    # Byte-identical on a rerun.
    assert _run(scenario, ids, tmp_path / "again", *back) == 0
    again = (tmp_path / "again" / "summary.json").read_bytes()
    assert again == (tmp_path / "back" / "summary.json").read_bytes()


def test_unknown_unloaded_or_foreign_versions_are_one_line_and_write_nothing(
    trained: tuple[Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario, ids = trained
    out = tmp_path / "out"
    code = _run(scenario, ids, out, "--set", 'release_train.rollback_to="candidate@1999"')
    one_line_exit_2(capsys, code, "release_train.rollback_to", "no version matches")
    code = _run(scenario, ids, out, "--set", 'models.candidate={registry="candidate@1999"}')
    one_line_exit_2(capsys, code, "no version matches 'candidate@1999'", ids[1])
    # Registered, but not a version of this run: it must be declared to be served.
    code = main(
        [
            "run", str(scenario), "--out", str(out), "--quiet",
            "--set", f'models.baseline={{registry="{ids[0]}"}}',
            "--set", f'release_train.rollback_to="{ids[1]}"',
        ]
    )  # fmt: skip
    one_line_exit_2(capsys, code, "release_train.rollback_to", ids[1], "declare it")
    # A version of the same size trained on another world (another seed) does not fit.
    code = _run(scenario, ids, out, "--seed", "25")
    one_line_exit_2(capsys, code, ids[0], "trained on other interactions", "rollout-lab train")
    assert not out.exists()


def test_releases_built_during_the_run_are_registered_with_their_lineage(
    trained: tuple[Path, list[str]], tmp_path: Path
) -> None:
    from replay.registry import Registry

    scenario, ids = trained
    registry = Registry(scenario.parent / "registry")
    assert _run(scenario, ids, tmp_path / "first") == 0
    versions = _summary(tmp_path / "first")["versions"]
    named = {name: v["model"]["registry_id"] for name, v in versions.items()}
    assert set(named) == {"baseline", "candidate", "candidate-2", "candidate-3"}
    assert named["baseline"] == ids[0] and named["candidate"] == ids[1]
    # Each release names its parent by id, carries its own data time and verifies on load.
    for release, parent in (("candidate-2", "candidate"), ("candidate-3", "candidate-2")):
        provenance = versions[release]["model"]["provenance"]
        assert named[release].startswith(f"{release}@")
        assert provenance["parent_id"] == named[parent]
        assert provenance["update"] == "warm_start"
        assert provenance["metrics"]["recall"] is not None
        assert registry.load(named[release]) is not None
    created = [
        versions[n]["model"]["provenance"]["created_at"] for n in ("candidate-2", "candidate-3")
    ]
    assert created[0] < created[1]
    # Content-addressed: a rerun registers the same ids and adds nothing.
    stored = sorted(p for p in registry.root.rglob("*") if p.is_dir())
    assert _run(scenario, ids, tmp_path / "second") == 0
    assert sorted(p for p in registry.root.rglob("*") if p.is_dir()) == stored
    assert (tmp_path / "second" / "summary.json").read_bytes() == (
        tmp_path / "first" / "summary.json"
    ).read_bytes()
