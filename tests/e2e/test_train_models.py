"""`rollout-lab train` registers every version with provenance; `models` lists, shows, diffs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rollout_lab.cli import main

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--set", "traffic.users=2000", "--set", "traffic.items=500"]


def test_train_then_list_show_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = tmp_path / "registry"
    scenario = str(ROOT / "scenarios" / "quickstart.toml")
    assert main(["train", scenario, "--registry", str(registry), *SMALL]) == 0
    capsys.readouterr()
    assert main(["models", "list", "--registry", str(registry)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["version", "parent", "created", "(UTC)"]
    ids = [line.split()[0] for line in table[1:]]
    assert [i.split("@")[0] for i in ids] == ["baseline", "candidate"]
    assert table[2].split()[1] == "baseline" and table[2].split()[3] == "20"
    assert main(["models", "show", ids[1], "--registry", str(registry)]) == 0
    shown = json.loads(capsys.readouterr().out)
    # A name stands for its newest version.
    assert main(["models", "show", "candidate", "--registry", str(registry)]) == 0
    assert json.loads(capsys.readouterr().out) == shown
    assert shown["parent_id"] == ids[0]
    assert shown["update"] == "warm_start"
    for key in (
        "train_window",
        "data_fingerprint",
        "algorithm",
        "hyperparameters",
        "metrics",
        "calibration",
        "training_seconds",
    ):
        assert shown[key] is not None, key
    assert 0 <= shown["metrics"]["recall"] <= 1
    assert main(["models", "diff", "baseline", ids[1], "--registry", str(registry)]) == 0
    diff = capsys.readouterr().out.splitlines()
    recall = next(line for line in diff if line.startswith("recall@K")).split()
    a, b, delta = float(recall[1]), float(recall[2]), float(recall[3])
    assert recall[3][0] in "+-" and not recall[1].startswith("+")
    assert delta == pytest.approx(b - a, abs=2e-4)
    lists = next(line for line in diff if line.startswith("lists on"))
    assert "Jaccard@K 0." in lists or "Jaccard@K 1." in lists
    # Training the same scenario again registers the very same ids (data-time tags, hashes).
    assert main(["train", scenario, "--registry", str(registry), *SMALL]) == 0
    capsys.readouterr()
    assert main(["models", "list", "--registry", str(registry)]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == ids


def test_models_show_unknown_version_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["models", "show", "baseline@20260101T000000Z-deadbeef", "--registry", str(tmp_path)]
    )
    assert code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_train_names_k_and_flags_a_candidate_worse_than_its_parent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = tmp_path / "registry"
    # Corrupted factors: the candidate lists much worse items than the baseline it comes from.
    noisy = [
        "--set",
        "models.candidate.fault=noisy_factors",
        "--set",
        "models.candidate.fault_scale=3",
    ]
    scenario = str(ROOT / "scenarios" / "quickstart.toml")
    args = ["train", scenario, "--registry", str(registry), "--k", "10", *SMALL, *noisy]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("holdout metrics at K = 10 ")
    note = next(line for line in out.splitlines() if line.startswith("note: "))
    assert note.startswith("note: candidate is worse than its parent baseline on the holdout: ")
    assert "recall@10" in note or "NDCG@10" in note


def test_an_ambiguous_prefix_is_one_line_naming_the_candidates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = tmp_path / "registry"
    scenario = str(ROOT / "scenarios" / "quickstart.toml")
    assert main(["train", scenario, "--registry", str(registry), *SMALL]) == 0
    capsys.readouterr()
    assert main(["models", "show", "ba", "--registry", str(registry)]) == 0
    assert main(["models", "show", "", "--registry", str(registry)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "matches 2 versions" in err[0]


def test_train_without_registry_option_uses_the_scenarios_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The registry a scenario names (relative to its file) is where ``train`` saves, so the
    ids ``run`` looks up there are the ones ``train`` wrote; ``./registry`` stays untouched."""
    folder, elsewhere = tmp_path / "scenarios", tmp_path / "cwd"
    folder.mkdir()
    elsewhere.mkdir()
    text = (ROOT / "scenarios" / "quickstart.toml").read_text(encoding="utf-8")
    scenario = folder / "quickstart.toml"
    scenario.write_text('registry = "models"\n' + text, encoding="utf-8")
    monkeypatch.chdir(elsewhere)
    assert main(["train", str(scenario), *SMALL]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"registry: {folder / 'models'}"
    assert sorted(p.name for p in (folder / "models").iterdir()) == ["baseline", "candidate"]
    assert not (elsewhere / "registry").exists()
